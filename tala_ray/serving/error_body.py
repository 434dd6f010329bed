"""Error answers of the decision API, in FastAPI's shape (`{"detail": [{"loc", "msg", ...}]}` or
`{"detail": "..."}`), made safe to send back whatever the request held.

Every 4xx goes through `install_error_handlers`: pydantic's validation problems (422), a
`UserError` raised while deciding (422), and every `HTTPException` (the body readers' 413/415/422,
the idempotency 409, the router's 404/405). What the request supplied is echoed only as a short
excerpt: `input` as at most `MAX_INPUT_CHARS` characters of its JSON text (a longer value becomes
that excerpt, a string), each string of `loc` likewise, `msg` at most `MAX_MSG_CHARS`; bytes that
are not UTF-8 are decoded with replacement characters and non-finite floats written as strings
("NaN", "Infinity", "-Infinity": JSON has no such numbers). A 422 lists at most `MAX_DETAILS`
problems, then one counting the rest.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from tala_ray.core.errors import UserError

MAX_INPUT_CHARS = 100
MAX_MSG_CHARS = 300
MAX_DETAILS = 20
_ELLIPSIS = "..."
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def excerpt(text: str, limit: int = MAX_INPUT_CHARS) -> str:
    """`text`, or its start and "..." in `limit` characters."""
    return text if len(text) <= limit else text[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def _scalar(value: Any) -> Any:
    """A JSON-safe scalar: strings and bytes cut short, non-finite floats as text, others as text."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE.get(value, "NaN")
    if isinstance(value, bytes | bytearray):
        value = bytes(value[: 4 * MAX_INPUT_CHARS]).decode("utf-8", "replace")
    return excerpt(value if isinstance(value, str) else str(value))


def _tokens(value: Any) -> Iterator[str]:
    """The JSON text of `value` with `_scalar` leaves, piece by piece (read only as far as needed)."""
    if isinstance(value, dict):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield from (", " if i else "", json.dumps(excerpt(str(key))), ": ")
            yield from _tokens(item)
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for i, item in enumerate(value):
            yield ", " if i else ""
            yield from _tokens(item)
        yield "]"
    else:
        yield json.dumps(_scalar(value), ensure_ascii=False)


def echoed(value: Any) -> Any:
    """What a problem may echo of an input value: the value (JSON-safe) when its JSON text has at
    most `MAX_INPUT_CHARS` characters, else the excerpt of that text (of the text itself for a string)."""
    if not isinstance(value, dict | list | tuple):
        return _scalar(value)
    text = ""
    for token in _tokens(value):
        text += token
        if len(text) > MAX_INPUT_CHARS:
            return excerpt(text)
    return json.loads(text)


def safe_problem(problem: dict[str, Any]) -> dict[str, Any]:
    """One problem (`loc`, `msg`, optional `type`, `input`, `ctx`) with every echo cut short."""
    safe: dict[str, Any] = {
        "loc": [part if isinstance(part, int) else excerpt(str(part)) for part in problem.get("loc", ())],
        "msg": excerpt(str(problem.get("msg", "")), MAX_MSG_CHARS),
    }
    if "type" in problem:
        safe = {"type": str(problem["type"]), **safe}
    if "input" in problem:
        safe["input"] = echoed(problem["input"])
    if problem.get("ctx"):
        safe["ctx"] = {str(key): echoed(value) for key, value in problem["ctx"].items()}
    return safe


def limited(problems: Sequence[dict[str, Any]], total: int | None = None) -> list[dict[str, Any]]:
    """The first `MAX_DETAILS` problems, then one counting the rest (of `total`, when more were found
    than listed)."""
    count = len(problems) if total is None else total
    kept = list(problems[:MAX_DETAILS])
    rest = count - len(kept)
    return kept + ([{"loc": ["body"], "msg": f"{rest} more problems not listed"}] if rest else [])


def safe_detail(detail: Any) -> Any:
    """An error's `detail` (a message, or a list of problems) with every echo cut short."""
    if isinstance(detail, list | tuple):
        return [safe_problem(p) if isinstance(p, dict) else _scalar(p) for p in detail]
    return excerpt(str(detail), MAX_MSG_CHARS)


def user_error_problems(error: UserError) -> list[dict[str, Any]]:
    """The 422 detail of a `UserError` raised while deciding a request."""
    return [{"loc": ["body"], "msg": excerpt(str(error), MAX_MSG_CHARS)}]


def install_error_handlers(app: FastAPI, on_validation_error: Callable[[], None] | None = None) -> None:
    """Answer validation problems, `UserError`s and `HTTPException`s of `app` with safe bodies;
    `on_validation_error` is called for each 422 of a validation problem (e.g. to count it)."""

    async def validation_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        if on_validation_error is not None:
            on_validation_error()
        problems = [safe_problem(problem) for problem in limited(list(error.errors()))]
        return JSONResponse({"detail": problems}, status_code=422)

    async def user_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, UserError)
        return JSONResponse({"detail": user_error_problems(error)}, status_code=422)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        safe = HTTPException(error.status_code, detail=safe_detail(error.detail), headers=error.headers)
        return await http_exception_handler(request, safe)

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(UserError, user_error)
    app.add_exception_handler(HTTPException, http_error)
