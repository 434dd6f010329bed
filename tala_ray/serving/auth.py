"""API-key (bearer token) authentication for the ingress, compared in constant time."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from tala_ray.core.errors import UserError

OPEN_PATHS = frozenset({"/healthz"})


def load_api_keys(env_var: str, key_file: str | None) -> tuple[bytes, ...]:
    """Keys from `key_file` (one a line, for rotation) or else from the environment variable.

    Refuses to run without a key: an open decision endpoint is never the default.
    """
    if key_file:
        path = Path(key_file)
        if not path.is_file():
            raise UserError(f"api_key_file: {key_file} does not exist")
        keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        source = f"api_key_file {key_file}"
    else:
        keys = [os.environ.get(env_var, "").strip()]
        keys = [k for k in keys if k]
        source = f"environment variable {env_var}"
    if not keys:
        raise UserError(f"api_key: no API key found in {source}; set one (the service never runs open)")
    if any(len(k) < 16 for k in keys):
        raise UserError(f"api_key: keys in {source} must be at least 16 characters")
    return tuple(k.encode() for k in keys)


def bearer_token(authorization: str | None) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip().encode()


def is_authorised(authorization: str | None, keys: tuple[bytes, ...]) -> bool:
    """True when the bearer token equals one of the keys; every key is compared (constant time)."""
    token = bearer_token(authorization)
    if token is None:
        return False
    matches = [hmac.compare_digest(token, key) for key in keys]
    return any(matches)
