"""Local networking helpers."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now on `host` (the OS picks it; bind it soon, another process may)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
