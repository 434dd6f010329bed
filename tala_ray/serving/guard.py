"""The request guard as plain ASGI middleware (no per-request task or stream, unlike
`@app.middleware("http")`): 401 without a valid bearer key (except the open paths, and only where
the app authenticates), 400/413 for a declared body length that is not a number or over the limit
before the body is read, and 413 as soon as the bytes received pass the limit, whether or not a
length was declared (a chunked body is counted as it arrives, never buffered here).

It reads the keys and the limit from `app.state` (`api_keys`, `max_body_bytes`), set by the replica
(the in-process baseline sets only the limit).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tala_ray.serving.auth import OPEN_PATHS, is_authorised
from tala_ray.serving.metrics import serving_metrics


def _too_large(limit: int) -> str:
    return f"body: larger than {limit} bytes"


def _counted(receive: Receive, limit: int) -> Receive:
    """`receive` summing the body's chunks; past `limit` bytes it raises a 413 `HTTPException`,
    which the app answers (the route reading the body stops there)."""
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                serving_metrics().errors.inc(tags={"stage": "request", "kind": "body_too_large"})
                raise HTTPException(status_code=413, detail=_too_large(limit))
        return message

    return counted


class RequestGuard:
    """Refuses unauthenticated or oversized HTTP requests; passes everything else through, its
    body counted. `authenticate=False` (the in-process baseline) checks the body size only."""

    def __init__(self, app: ASGIApp, authenticate: bool = True) -> None:
        self.app = app
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, _counted(receive, scope["app"].state.max_body_bytes), send)
        else:
            await refusal(scope, receive, send)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        state, headers = scope["app"].state, Headers(scope=scope)
        if (
            self.authenticate
            and scope["path"] not in OPEN_PATHS
            and not is_authorised(headers.get("authorization"), state.api_keys)
        ):
            serving_metrics().errors.inc(tags={"stage": "request", "kind": "unauthorised"})
            return JSONResponse(
                {"detail": "missing or invalid API key: send 'Authorization: Bearer <key>'"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        declared = headers.get("content-length", "0")
        if not (declared.isascii() and declared.isdigit()):
            return JSONResponse({"detail": "content-length: not a number"}, status_code=400)
        if int(declared) > state.max_body_bytes:
            return JSONResponse({"detail": _too_large(state.max_body_bytes)}, status_code=413)
        return None
