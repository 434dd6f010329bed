"""Request bodies read by the routes themselves: `POST /v1/decisions` (JSON) into a
`DecisionRequest`, `POST /v1/decisions/batch` (JSON or Arrow IPC) into the batch's raw tables.

JSON (`application/json`, the default) is validated by pydantic straight from the bytes (no
`json.loads` and dict in between: ~80 instead of ~120 us for one application), with FastAPI's
422 detail shape; an Arrow IPC stream (`application/vnd.apache.arrow.stream`, see `arrow_schema`) is decoded
and validated column-wise, ~100x cheaper per application. Both give the same raw tables, the same
422 detail shape (`loc` naming the application, record and field) and the same 413 over the limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pyarrow as pa
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from tala_ray.features.columns import row_count
from tala_ray.features.online import request_columns
from tala_ray.serving.arrow_body import ArrowBodyError, TooManyApplicationsError, decode_batch
from tala_ray.serving.arrow_schema import ARROW_STREAM_MEDIA_TYPE
from tala_ray.serving.graph import RawTables
from tala_ray.serving.online_store import EventsRequest, event_problems, events_table
from tala_ray.serving.records import fingerprint
from tala_ray.serving.schemas import ApplicationByIdRequest, BatchByIdRequest, BatchDecisionRequest, DecisionRequest

ModelT = TypeVar("ModelT", bound=BaseModel)

JSON_MEDIA_TYPE = "application/json"
BY_ID_KEY = b'"applicant_id"'  # no key of a raw-body request: its presence means applications by applicant id

OPENAPI_DECISION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            JSON_MEDIA_TYPE: {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/ApplicationRequest"},
                        {"$ref": "#/components/schemas/ApplicationByIdRequest"},
                    ]
                }
            }
        },
    }
}

OPENAPI_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            JSON_MEDIA_TYPE: {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/BatchDecisionRequest"},
                        {"$ref": "#/components/schemas/BatchByIdRequest"},
                    ]
                }
            },
            ARROW_STREAM_MEDIA_TYPE: {
                "schema": {"type": "string", "format": "binary"},
                "description": "An Arrow IPC stream, one row per application "
                "(tala_ray.serving.arrow_schema.REQUEST_SCHEMA).",
            },
        },
    }
}


@dataclass(frozen=True)
class BatchBody:
    """A batch request read from its body: its raw tables (or its applications by applicant id, whose
    tables the online store gives), and its digest for idempotency (computed on demand: only a request
    with an idempotency key needs it)."""

    tables: RawTables | None
    fingerprint: Callable[[], str]
    by_id: list[ApplicationByIdRequest] | None = None

    @property
    def count(self) -> int:
        return len(self.by_id) if self.by_id is not None else row_count(self.tables["applications"])


def _media_type(content_type: str | None) -> str:
    return (content_type or JSON_MEDIA_TYPE).split(";")[0].strip().lower()


def _unsupported_media_type(media_type: str, accepted: str) -> HTTPException:
    detail = [{"loc": ["header", "Content-Type"], "msg": f"expected {accepted}, got {media_type!r}"}]
    return HTTPException(status_code=415, detail=detail)


def _validated_json(model: type[ModelT], body: bytes) -> ModelT:
    """`model` validated from JSON bytes, strictly: each value of the JSON type the OpenAPI spec
    gives (no `true` or `"5"` for a number, no epoch number or bare date for a time, no 5.0 for an
    integer); a problem is a 422 in FastAPI's shape (`loc` from "body")."""
    try:
        return model.model_validate_json(body, strict=True)
    except ValidationError as error:
        errors = error.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def read_decision_body(body: bytes, content_type: str | None) -> DecisionRequest | ApplicationByIdRequest:
    """One application's request from a JSON body (by applicant id when it names one); 415 for another
    media type, 422 for invalid content."""
    media_type = _media_type(content_type)
    if media_type != JSON_MEDIA_TYPE and not media_type.endswith("+json"):
        raise _unsupported_media_type(media_type, JSON_MEDIA_TYPE)
    return _validated_json(ApplicationByIdRequest if BY_ID_KEY in body else DecisionRequest, body)


def read_batch_body(body: bytes, content_type: str | None, max_applications: int) -> BatchBody:
    """The raw tables of a batch body; 415 for another media type, 422 for invalid content, 413
    for more than `max_applications` applications."""
    media_type, by_id = _media_type(content_type), None
    if media_type == ARROW_STREAM_MEDIA_TYPE:
        try:
            tables: RawTables | None = decode_batch(body, max_applications)
        except TooManyApplicationsError as error:
            detail = [
                {
                    "loc": ["body", "applications"],
                    "msg": f"at most {max_applications} applications per batch, got at least {error.rows}",
                }
            ]
            raise HTTPException(status_code=413, detail=detail) from None
        except ArrowBodyError as error:
            raise HTTPException(status_code=422, detail=error.details) from None
        digest = lambda: hashlib.sha256(body).hexdigest()  # noqa: E731
    elif (media_type == JSON_MEDIA_TYPE or media_type.endswith("+json")) and BY_ID_KEY in body:
        request_by_id = _validated_json(BatchByIdRequest, body)
        tables, by_id = None, request_by_id.applications
        digest = lambda: fingerprint(request_by_id)  # noqa: E731
    elif media_type == JSON_MEDIA_TYPE or media_type.endswith("+json"):
        request = _validated_json(BatchDecisionRequest, body)
        tables = request_columns(request.applications)
        digest = lambda: fingerprint(request)  # noqa: E731
    else:
        raise _unsupported_media_type(media_type, f"{JSON_MEDIA_TYPE} or {ARROW_STREAM_MEDIA_TYPE}")
    batch = BatchBody(tables=tables, fingerprint=digest, by_id=by_id)
    if batch.count > max_applications:
        detail = [
            {
                "loc": ["body", "applications"],
                "msg": f"at most {max_applications} applications per batch, got {batch.count}",
            }
        ]
        raise HTTPException(status_code=413, detail=detail)
    return batch


def read_events_body(body: bytes, content_type: str | None) -> pa.Table:
    """The events of a `POST /v1/events` JSON body as the `events` contract table; 415 for another media
    type, 422 naming the event and field for one the consumers would quarantine (their rules)."""
    media_type = _media_type(content_type)
    if media_type != JSON_MEDIA_TYPE and not media_type.endswith("+json"):
        raise _unsupported_media_type(media_type, JSON_MEDIA_TYPE)
    table = events_table(_validated_json(EventsRequest, body))
    problems = event_problems(table)
    if problems:
        raise HTTPException(status_code=422, detail=problems)
    return table
