"""The ingress's request guard as plain ASGI middleware (no per-request task or stream, unlike
`@app.middleware("http")`): 401 without a valid bearer key (except the open paths), 400/413 for a
declared body length that is not a number or over the limit, before the body is read.

It reads the keys and the limit from `app.state` (`api_keys`, `max_body_bytes`), set by the replica.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tala_ray.serving.auth import OPEN_PATHS, is_authorised
from tala_ray.serving.metrics import serving_metrics


class RequestGuard:
    """Refuses unauthenticated or oversized HTTP requests; passes everything else through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)

    @staticmethod
    def _refusal(scope: Scope) -> JSONResponse | None:
        state, headers = scope["app"].state, Headers(scope=scope)
        if scope["path"] not in OPEN_PATHS and not is_authorised(headers.get("authorization"), state.api_keys):
            serving_metrics().errors.inc(tags={"stage": "request", "kind": "unauthorised"})
            return JSONResponse(
                {"detail": "missing or invalid API key: send 'Authorization: Bearer <key>'"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        declared = headers.get("content-length", "0")
        if not declared.isdigit():
            return JSONResponse({"detail": "content-length: not a number"}, status_code=400)
        if int(declared) > state.max_body_bytes:
            return JSONResponse({"detail": f"body: larger than {state.max_body_bytes} bytes"}, status_code=413)
        return None
