"""The decision model graph in ONE process: a plain FastAPI app (no Ray), the baseline that
`bench/serve.py endpoint --baseline-factory tala_ray.serving.inprocess:create_app` starts under uvicorn.

Same request/response schemas, feature code, predictors and policy as the Serve application
(`tala_ray.serving.graph`); no authentication, idempotency, routing or prediction log.
Configured by environment variables (`create_app` arguments override them):

- `TALA_INPROCESS_REGISTRY` (required): registry URI holding the models.
- `TALA_INPROCESS_CREDIT_MODEL` / `TALA_INPROCESS_CREDIT_REF`: credit model name and alias or
  version (default `credit_pd` / `champion`).
- `TALA_INPROCESS_UPLIFT_MODEL` / `TALA_INPROCESS_UPLIFT_REF`: default `uplift` / `champion`.
- `TALA_INPROCESS_POLICY`: the policy parameters as JSON (default: `PolicyParams()` defaults).
"""

# No `from __future__ import annotations` here: FastAPI must see the real request body types.
import os
import uuid
from typing import Any

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict

from tala_ray.core.errors import UserError
from tala_ray.features.columns import take
from tala_ray.features.online import request_columns
from tala_ray.policy.decision import PolicyParams
from tala_ray.serving import graph
from tala_ray.serving.batch_body import (
    OPENAPI_DECISION_BODY,
    OPENAPI_REQUEST_BODY,
    document_batch_body,
    read_batch_body,
    read_decision_body,
)
from tala_ray.serving.heap import prepare_heap_for_serving
from tala_ray.serving.records import batch_response, decision_response
from tala_ray.serving.schemas import (
    BatchDecisionResponse,
    DecisionResponse,
    HealthResponse,
)


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

    @classmethod
    def from_env(cls, **overrides: object) -> "InProcessSettings":
        registry = os.environ.get("TALA_INPROCESS_REGISTRY")
        if registry is None and "registry" not in overrides:
            raise UserError("TALA_INPROCESS_REGISTRY: not set (the registry URI holding the models)")
        values: dict[str, object] = {"registry": registry}
        for field in ("credit_model", "credit_ref", "uplift_model", "uplift_ref"):
            if f"TALA_INPROCESS_{field.upper()}" in os.environ:
                values[field] = os.environ[f"TALA_INPROCESS_{field.upper()}"]
        if "TALA_INPROCESS_POLICY" in os.environ:
            values["policy"] = PolicyParams.model_validate_json(os.environ["TALA_INPROCESS_POLICY"])
        return cls.model_validate(values | overrides)


class DecisionGraph:
    """Loaded predictors and policy: applications in, decision responses out."""

    def __init__(self, settings: InProcessSettings) -> None:
        from tala_ray.features.definitions import feature_set_version
        from tala_ray.models.predictors import load_predictor

        fsv = feature_set_version()
        self.credit = load_predictor(settings.registry, settings.credit_model, settings.credit_ref, fsv, kind="credit")
        self.uplift = load_predictor(settings.registry, settings.uplift_model, settings.uplift_ref, fsv, kind="uplift")
        self.policy = settings.policy
        self.descriptions = graph.feature_descriptions()

    def decide(self, tables: graph.RawTables, batch_id: str | None) -> list[dict[str, Any]]:
        """The applications' raw tables through features -> credit, uplift -> policy -> declines' reasons."""
        features = graph.table_features(tables)
        credit = graph.credit_scores(self.credit, "champion", features)
        uplift = graph.uplift_effects(self.uplift, features)
        items = graph.policy_items(*graph.application_terms(tables), credit, uplift)
        decisions = graph.policy_decisions(self.policy, items)
        positions = graph.declined(decisions)
        if positions:
            contributions = graph.credit_contributions(self.credit, take(features, positions))
            for position, reasons in zip(
                positions, graph.decline_reasons(self.policy, self.descriptions, contributions)
            ):
                decisions[position]["reason_codes"] = reasons
        ids = [f"{batch_id}:{i}" if batch_id else str(uuid.uuid4()) for i in range(len(decisions))]
        return [decision_response(*parts) for parts in zip(ids, decisions, credit, uplift, strict=True)]


def create_app(**overrides: object) -> FastAPI:
    """The app factory (`uvicorn --factory tala_ray.serving.inprocess:create_app`)."""
    settings = InProcessSettings.from_env(**overrides)
    decision_graph = DecisionGraph(settings)
    prepare_heap_for_serving()
    app = FastAPI(title="tala-ray decision service (in-process baseline)", version="1")

    @app.get("/healthz", response_model=HealthResponse)
    async def healthz() -> HealthResponse:
        return HealthResponse(status="ok")

    @app.post("/v1/decisions", response_model=DecisionResponse, openapi_extra=OPENAPI_DECISION_BODY)
    async def decision(request: Request) -> dict[str, Any]:
        body = read_decision_body(await request.body(), request.headers.get("content-type"))
        return decision_graph.decide(request_columns([body]), batch_id=None)[0]

    @app.post("/v1/decisions/batch", response_model=BatchDecisionResponse, openapi_extra=OPENAPI_REQUEST_BODY)
    async def batch(request: Request) -> Response:
        body = read_batch_body(
            await request.body(), request.headers.get("content-type"), settings.max_batch_applications
        )
        batch_id = str(uuid.uuid4())
        return batch_response(batch_id, decision_graph.decide(body.tables, batch_id), replayed=False)

    document_batch_body(app)

    return app
