"""Paths and URIs on any pyarrow filesystem (local disk, s3://, gs://)."""

from __future__ import annotations

import json
import os
from typing import TypeVar

from pyarrow import fs as pafs
from pydantic import BaseModel

from tala_ray.core.errors import UserError

Model = TypeVar("Model", bound=BaseModel)


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


def write_model(location: str, relative: str, model: BaseModel) -> None:
    """`model` as indented, key-sorted JSON at `relative` under `location`."""
    filesystem, root = resolve_filesystem(location)
    with filesystem.open_output_stream(join_path(root, relative)) as stream:
        stream.write(json.dumps(model.model_dump(mode="json"), indent=2, sort_keys=True).encode())


def read_model(location: str, relative: str, model: type[Model], missing: str) -> Model:
    """The `model` stored as JSON at `relative` under `location`; `UserError(missing)` when there is no such file."""
    filesystem, root = resolve_filesystem(location)
    path = join_path(root, relative)
    if filesystem.get_file_info(path).type != pafs.FileType.File:
        raise UserError(missing)
    with filesystem.open_input_stream(path) as stream:
        return model.model_validate_json(stream.read())
