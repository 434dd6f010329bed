"""The decision model graph in ONE process: a plain FastAPI app (no Ray cluster), the baseline that
`bench/serve.py endpoint --baseline-factory tala_ray.serving.inprocess:create_app` starts under uvicorn.

Same request/response schemas and the same graph as the Serve application: the steps' classes
run here (`steps.local_steps`, as in the fused layout) in the same order (`steps.decide`), behind
the same body limit (`guard.RequestGuard`) and error answers (`error_body`); no authentication,
idempotency or routing (Ray's metrics record nowhere without Ray); a prediction log only when
`prediction_log_uri` is given (the consistency tests read it).
Configured by environment variables (`create_app` arguments override them):

- `TALA_INPROCESS_REGISTRY` (required): registry URI holding the models.
- `TALA_INPROCESS_CREDIT_MODEL` / `TALA_INPROCESS_CREDIT_REF`: credit model name and alias or
  version (default `credit_pd` / `champion`).
- `TALA_INPROCESS_UPLIFT_MODEL` / `TALA_INPROCESS_UPLIFT_REF`: default `uplift` / `champion`.
- `TALA_INPROCESS_POLICY`: the policy parameters as JSON (default: `PolicyParams()` defaults).
- `TALA_INPROCESS_EXPECTED_FEATURE_SET_VERSION`: the models must match it (default: the code's
  current version, as in the Serve application).
- `TALA_INPROCESS_MAX_BODY_BYTES`: the largest request body (else 413; default 100 MB, room for
  `max_batch_applications` JSON applications).
"""

# No `from __future__ import annotations` here: FastAPI must see the real request body types.
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tala_ray.core.errors import UserError
from tala_ray.features.columns import row_count
from tala_ray.features.online import ApplicationByIdRequest, request_columns
from tala_ray.monitoring.prediction_log import PredictionLogWriter
from tala_ray.policy.decision import PolicyParams
from tala_ray.serving.args import AppArgs, ModelRef
from tala_ray.serving.batch_body import (
    OPENAPI_DECISION_BODY,
    OPENAPI_REQUEST_BODY,
    read_batch_body,
    read_decision_body,
    read_events_body,
)
from tala_ray.serving.error_body import install_error_handlers
from tala_ray.serving.graph import RawTables
from tala_ray.serving.guard import RequestGuard
from tala_ray.serving.heap import prepare_heap_for_serving
from tala_ray.serving.online_store import EventsResponse, OnlineStoreConfig, store_error
from tala_ray.serving.records import LOG_COLUMN_TYPES, application_log_columns, batch_response, log_columns
from tala_ray.serving.schemas import (
    BatchDecisionResponse,
    DecisionResponse,
    HealthResponse,
    document_api,
    error_responses,
)
from tala_ray.serving.steps import decide, local_steps, read_by_id, step_configs

BODY_ERRORS = error_responses(400, 404, 413, 415, 422, 503)
EVENT_ERRORS = error_responses(400, 413, 415, 422, 503)


class InProcessSettings(BaseModel):
    """Which models and policy the in-process server runs."""

    model_config = ConfigDict(extra="forbid")

    registry: str
    credit_model: str = "credit_pd"
    credit_ref: str = "champion"
    uplift_model: str = "uplift"
    uplift_ref: str = "champion"
    policy: PolicyParams = PolicyParams()
    max_batch_applications: int = 10_000
    max_body_bytes: int = Field(100_000_000, ge=1_000)
    expected_feature_set_version: str | None = None
    online_store: OnlineStoreConfig = OnlineStoreConfig()
    prediction_log_uri: str | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> "InProcessSettings":
        registry = os.environ.get("TALA_INPROCESS_REGISTRY")
        if registry is None and "registry" not in overrides:
            raise UserError("TALA_INPROCESS_REGISTRY: not set (the registry URI holding the models)")
        values: dict[str, object] = {"registry": registry}
        names = ("credit_model", "credit_ref", "uplift_model", "uplift_ref", "expected_feature_set_version")
        for field in (*names, "max_body_bytes"):
            if f"TALA_INPROCESS_{field.upper()}" in os.environ:
                values[field] = os.environ[f"TALA_INPROCESS_{field.upper()}"]
        if "TALA_INPROCESS_POLICY" in os.environ:
            values["policy"] = PolicyParams.model_validate_json(os.environ["TALA_INPROCESS_POLICY"])
        return cls.model_validate(values | overrides)

    def app_args(self) -> AppArgs:
        """The Serve application's args for the same models and policy."""
        return AppArgs(
            registry_uri=self.registry,
            credit_model=ModelRef(name=self.credit_model, ref=self.credit_ref),
            uplift_model=ModelRef(name=self.uplift_model, ref=self.uplift_ref),
            policy=self.policy,
            expected_feature_set_version=self.expected_feature_set_version,
            online_store=self.online_store,
        )


def create_app(**overrides: object) -> FastAPI:
    """The app factory (`uvicorn --factory tala_ray.serving.inprocess:create_app`)."""
    settings = InProcessSettings.from_env(**overrides)
    steps = local_steps(step_configs(settings.app_args()))
    prediction_log = None
    if settings.prediction_log_uri is not None:
        prediction_log = PredictionLogWriter(settings.prediction_log_uri, 2.0, 10_000, LOG_COLUMN_TYPES)
    prepare_heap_for_serving()

    async def decided(
        tables: RawTables, batch_id: str | None, applicant_ids: list[int] | None = None
    ) -> list[dict[str, Any]]:
        """The decision responses of the tables' applications, each scored by the champion (logged
        with `applicant_ids`, of decisions by id, when there is a log)."""
        count = row_count(tables["applications"])
        ids = [f"{batch_id}:{i}" if batch_id else str(uuid.uuid4()) for i in range(count)]
        result = await decide(steps, tables, ["champion"] * count)
        responses = result.responses(ids)
        if prediction_log is not None:
            nothing, now = [None] * count, datetime.now(UTC)
            columns = log_columns(responses, result.decisions, "decision", nothing, [0.0] * count, now)
            columns |= application_log_columns(tables["applications"], applicant_ids)
            prediction_log.append_columns(columns, count, features=result.features)
        return responses

    async def store_tables(requests: list[ApplicationByIdRequest]) -> RawTables:
        """The raw tables of applications by applicant id; 404 naming unknown ids, 503 when the store is down."""
        read = await read_by_id(steps, requests)
        if read.tables is None:
            raise store_error(read.unavailable, read.missing)
        return read.tables

    app = FastAPI(title="tala-ray decision service (in-process baseline)", version="1")
    app.state.max_body_bytes = settings.max_body_bytes
    app.add_middleware(RequestGuard, authenticate=False)
    install_error_handlers(app)

    @app.get("/healthz", response_model=HealthResponse, responses=error_responses(400, 413))
    async def healthz() -> HealthResponse:
        return HealthResponse(status="ok")

    @app.post(
        "/v1/decisions", response_model=DecisionResponse, responses=BODY_ERRORS, openapi_extra=OPENAPI_DECISION_BODY
    )
    async def decision(request: Request) -> dict[str, Any]:
        body = read_decision_body(await request.body(), request.headers.get("content-type"))
        by_id = isinstance(body, ApplicationByIdRequest)
        tables = await store_tables([body]) if by_id else request_columns([body])
        return (await decided(tables, None, [body.applicant_id] if by_id else None))[0]

    @app.post(
        "/v1/decisions/batch",
        response_model=BatchDecisionResponse,
        responses=BODY_ERRORS,
        openapi_extra=OPENAPI_REQUEST_BODY,
    )
    async def batch(request: Request) -> Response:
        body = read_batch_body(
            await request.body(), request.headers.get("content-type"), settings.max_batch_applications
        )
        batch_id = str(uuid.uuid4())
        if body.by_id is None:
            return batch_response(batch_id, await decided(body.tables, batch_id), replayed=False)
        ids = [r.applicant_id for r in body.by_id]
        return batch_response(batch_id, await decided(await store_tables(body.by_id), batch_id, ids), replayed=False)

    @app.post("/v1/events", response_model=EventsResponse, responses=EVENT_ERRORS)
    async def events(request: Request) -> EventsResponse:
        table = read_events_body(await request.body(), request.headers.get("content-type"))
        unavailable = await steps.online_store.publish.remote(table)
        if unavailable is not None:
            raise store_error(unavailable)
        return EventsResponse(accepted=table.num_rows)

    document_api(app, bearer_auth=False)
    app.state.prediction_log = prediction_log  # flushed on its timer and at exit; `.flush()` for a reader now

    return app
