"""Pure helpers of the ingress: response bodies, prediction-log rows, body digests.

They live outside `ingress.py` because `@serve.ingress` serialises the FastAPI routes while that
module is still being imported: names defined after the class would be missing in the replica.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
from fastapi import Response
from pydantic import BaseModel

LOG_COLUMN_TYPES = {
    "logged_at": pa.timestamp("us", tz="UTC"),
    "idempotency_key": pa.string(),
    "expected_profit_by_option": pa.map_(pa.string(), pa.float64()),
    "reason_codes": pa.list_(pa.string()),
}
"""The prediction-log types of `log_record`'s columns that their values alone may not fix
(every key missing, every list empty): the same schema in every file."""


def fingerprint(body: BaseModel) -> str:
    """A digest of the request body, to refuse an idempotency key reused for a different request."""
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


def decision_response(request_id: str, decision: dict, credit: dict, uplift: dict) -> dict[str, Any]:
    """One decision in `DecisionResponse`'s shape, as a plain dict: a batch of them is serialised
    once by `batch_response` without building and re-validating a model per decision."""
    return {
        "request_id": request_id,
        "decision": decision["decision"],
        "limit": decision["limit"],
        "intervention": decision["intervention"],
        "default_probability": credit["default_probability"],
        "uplift": uplift["uplift"],
        "expected_profit": decision["expected_profit"],
        "reason_codes": decision["reason_codes"],
        "model_versions": {"credit": credit["version"], "credit_role": credit["role"], "uplift": uplift["version"]},
        "replayed": False,
    }


def batch_response(batch_id: str, decisions: list[dict[str, Any]], replayed: bool) -> Response:
    """The `BatchDecisionResponse` body as JSON bytes, written by orjson (the standard library's
    encoder took ~3 us a decision). Every number is finite by construction; orjson would write a
    non-finite one as null."""
    body = {"batch_id": batch_id, "decisions": decisions, "replayed": replayed}
    return Response(orjson.dumps(body), media_type="application/json")


def log_record(
    response: dict[str, Any],
    decision: dict,
    role: str,
    idempotency_key: str | None,
    latency_ms: float,
    logged_at: datetime,
) -> dict[str, Any]:
    """One prediction-log row: ids, time, outputs, model versions, latency (the writer adds the
    features, given to it as numpy columns)."""
    versions = response["model_versions"]
    return {
        "request_id": response["request_id"],
        "logged_at": logged_at,
        "role": role,
        "idempotency_key": idempotency_key,
        "decision": response["decision"],
        "limit": response["limit"],
        "intervention": response["intervention"],
        "default_probability": response["default_probability"],
        "uplift": response["uplift"],
        "expected_profit": response["expected_profit"],
        "expected_profit_by_option": decision["expected_profit_by_option"],
        "reason_codes": [r["code"] for r in response["reason_codes"]],
        "credit_model_version": versions["credit"],
        "credit_role": versions["credit_role"],
        "uplift_model_version": versions["uplift"],
        "latency_ms": latency_ms,
    }
