"""Pure helpers of the ingress: response bodies, prediction-log rows, body digests.

They live outside `ingress.py` because `@serve.ingress` serialises the FastAPI routes while that
module is still being imported: names defined after the class would be missing in the replica.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from fastapi import Response
from pydantic import BaseModel

LOG_COLUMN_TYPES = {
    "logged_at": pa.timestamp("us", tz="UTC"),
    "idempotency_key": pa.string(),
    "expected_profit_by_option": pa.map_(pa.string(), pa.float64()),
    "reason_codes": pa.list_(pa.string()),
    "applicant_id": pa.int64(),
    "application_time": pa.timestamp("ms", tz="UTC"),
}
"""The prediction-log types of `log_columns`' columns that their values alone may not fix
(every key missing, every list empty): the same schema in every file."""

OPTIONAL_LOG_COLUMN_TYPES = {
    "uplift_by_arm": pa.map_(pa.string(), pa.float64()),
    "uplift_role": pa.string(),
    "changed_by_uplift_challenger": pa.string(),
}
"""The types of the columns only some services log (several arms, an uplift challenger)."""


def fingerprint(body: BaseModel) -> str:
    """A digest of the request body, to refuse an idempotency key reused for a different request."""
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


def decision_response(request_id: str, decision: dict, credit: dict, uplift: dict) -> dict[str, Any]:
    """One decision in `DecisionResponse`'s shape, as a plain dict: a batch of them is serialised
    once by `batch_response` without building and re-validating a model per decision.

    An uplift model with several arms adds every arm's uplift and every option's expected profit;
    an uplift challenger in canary adds the uplift model's role (a one-arm champion's response is as it was)."""
    versions = {"credit": credit["version"], "credit_role": credit["role"], "uplift": uplift["version"]}
    if "role" in uplift:
        versions["uplift_role"] = uplift["role"]
    response = {
        "request_id": request_id,
        "decision": decision["decision"],
        "limit": decision["limit"],
        "intervention": decision["intervention"],
        "default_probability": credit["default_probability"],
        "uplift": uplift["uplift"],
        "expected_profit": decision["expected_profit"],
        "reason_codes": decision["reason_codes"],
        "model_versions": versions,
        "replayed": False,
    }
    if "uplift_by_arm" in uplift:
        response["uplift_by_arm"] = uplift["uplift_by_arm"]
        response["expected_profit_by_option"] = decision["expected_profit_by_option"]
    return response


def batch_response(batch_id: str, decisions: list[dict[str, Any]], replayed: bool) -> Response:
    """The `BatchDecisionResponse` body as JSON bytes, written by orjson (the standard library's
    encoder took ~3 us a decision). Every number is finite by construction; orjson would write a
    non-finite one as null."""
    body = {"batch_id": batch_id, "decisions": decisions, "replayed": replayed}
    return Response(orjson.dumps(body), media_type="application/json")


def application_log_columns(applications: dict[str, Any], applicant_ids: list[int] | None) -> dict[str, list[Any]]:
    """What the offline recomputation of the logged features needs (`monitoring.consistency`): the
    applicant's id (decisions by id; None for a raw body) and the application's time, amount and term."""
    times = np.asarray(applications["application_time"], dtype=np.int64)
    return {
        "applicant_id": applicant_ids if applicant_ids is not None else [None] * len(times),
        "application_time": pa.array(times, pa.int64()).cast(pa.timestamp("ms", tz="UTC")).to_pylist(),
        "requested_amount": np.asarray(applications["amount"], dtype=float).tolist(),
        "requested_term_days": np.asarray(applications["term_days"], dtype=float).tolist(),
    }


def log_columns(
    responses: list[dict[str, Any]],
    decisions: list[dict[str, Any]],
    role: str,
    idempotency_keys: list[str | None],
    latencies_ms: list[float],
    logged_at: datetime,
) -> dict[str, list[Any]]:
    """The prediction-log columns of decided requests (one value a response): ids, time, outputs,
    model versions, latency (the writer adds the features, given to it as numpy columns)."""
    size = len(responses)
    versions = [response["model_versions"] for response in responses]

    def field(name: str) -> list[Any]:
        return [response[name] for response in responses]

    return {
        "request_id": field("request_id"),
        "logged_at": [logged_at] * size,
        "role": [role] * size,
        "idempotency_key": idempotency_keys,
        "decision": field("decision"),
        "limit": field("limit"),
        "intervention": field("intervention"),
        "default_probability": field("default_probability"),
        "uplift": field("uplift"),
        "expected_profit": field("expected_profit"),
        "expected_profit_by_option": [decision["expected_profit_by_option"] for decision in decisions],
        "reason_codes": [[reason["code"] for reason in response["reason_codes"]] for response in responses],
        "credit_model_version": [v["credit"] for v in versions],
        "credit_role": [v["credit_role"] for v in versions],
        "uplift_model_version": [v["uplift"] for v in versions],
        "latency_ms": latencies_ms,
    } | _optional_log_columns(responses, versions)


def _optional_log_columns(responses: list[dict[str, Any]], versions: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Columns only some services have: every arm's uplift (several arms), the uplift model's role (an
    uplift challenger in canary or shadow)."""
    columns: dict[str, list[Any]] = {}
    if responses and "uplift_by_arm" in responses[0]:
        columns["uplift_by_arm"] = [response["uplift_by_arm"] for response in responses]
    if versions and "uplift_role" in versions[0]:
        columns["uplift_role"] = [v["uplift_role"] for v in versions]
    return columns
