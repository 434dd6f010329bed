"""Paths and URIs on any pyarrow filesystem (local disk, s3://, gs://)."""

from __future__ import annotations

import os

from pyarrow import fs as pafs


def is_uri(location: str) -> bool:
    return "://" in location


def resolve_filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path inside it for a local path or a URI."""
    if is_uri(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), os.path.abspath(location)


def join_path(root: str, *parts: str) -> str:
    """Join with '/', which every pyarrow filesystem accepts."""
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])
