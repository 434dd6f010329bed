"""The FastAPI ingress: authentication, validation, routing (champion/canary/shadow), logging."""

# No `from __future__ import annotations` here: FastAPI must see the real request body types.
import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from ray import serve

from tala_ray.core.errors import UserError
from tala_ray.features.columns import row_count
from tala_ray.features.online import ApplicationByIdRequest, request_columns
from tala_ray.serving.args import BatchingConfig, RoutingConfig
from tala_ray.serving.auth import load_api_keys
from tala_ray.serving.batch_body import (
    OPENAPI_DECISION_BODY,
    OPENAPI_REQUEST_BODY,
    read_batch_body,
    read_decision_body,
    read_events_body,
)
from tala_ray.serving.error_body import install_error_handlers
from tala_ray.serving.graph import RawTables, decision_changes
from tala_ray.serving.guard import RequestGuard
from tala_ray.serving.heap import prepare_heap_for_serving
from tala_ray.serving.idempotency import IdempotencyConflict, SharedIdempotency
from tala_ray.serving.metrics import serving_metrics
from tala_ray.serving.online_store import EventsResponse, store_error
from tala_ray.serving.records import (
    LOG_COLUMN_TYPES,
    OPTIONAL_LOG_COLUMN_TYPES,
    application_log_columns,
    batch_response,
    fingerprint,
    log_columns,
)
from tala_ray.serving.schemas import (
    BatchDecisionResponse,
    DecisionRequest,
    DecisionResponse,
    HealthResponse,
    ModelsResponse,
    document_api,
    error_responses,
)
from tala_ray.serving.steps import (
    Decided,
    GraphSteps,
    Role,
    StepConfigs,
    decide,
    local_steps,
    read_by_id,
    rescore,
    shadow_uplift,
)

log = logging.getLogger("ray.serve")

app = FastAPI(
    title="tala-ray decision service",
    version="1",
    description="Credit decisions: default probability, intervention uplift, policy. Bearer API key required.",
)
document_api(app, bearer_auth=True)
app.add_middleware(RequestGuard)
install_error_handlers(
    app, on_validation_error=lambda: serving_metrics().errors.inc(tags={"stage": "request", "kind": "validation"})
)

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
# What each route may answer besides its 200 (the guard's 400/401/413 on every guarded route;
# Serve's proxy 503 on every route).
DECISION_ERRORS = error_responses(400, 401, 404, 409, 413, 415, 422, 503)
EVENT_ERRORS = error_responses(400, 401, 413, 415, 422, 503)


class IngressSettings(BaseModel):
    """Fixed at replica start: where the log goes, where the API key comes from."""

    model_config = ConfigDict(extra="forbid")

    prediction_log_uri: str
    log_flush_interval_s: float
    log_max_buffer_rows: int
    api_key_env: str
    api_key_file: str | None
    max_body_bytes: int


@dataclass(frozen=True)
class PendingDecision:
    """A single-decision request waiting to be decided together with the replica's other ones."""

    body: DecisionRequest | ApplicationByIdRequest
    idempotency_key: str | None
    started: float  # time.perf_counter() when the request arrived


# Everything the class uses must be defined above it: `@serve.ingress` serialises the routes here.
# A replaced replica finishes what it holds: its in-flight decisions may wait on steps that are
# restarting too (a rollout on a busy node took 20-26 s), past Serve's default 20 s grace.
@serve.deployment(
    name="DecisionIngress",
    max_ongoing_requests=128,
    graceful_shutdown_timeout_s=60,
    ray_actor_options={"num_cpus": 0.1},
)
@serve.ingress(app)
class DecisionIngress:
    """Runs the graph (`steps.decide`) through the steps' handles (composed layout) or in this
    replica (fused layout); routes, logs and counts every decision."""

    def __init__(self, steps: GraphSteps | StepConfigs, idempotency_store: Any, settings: dict[str, Any]) -> None:
        """`steps`: the step deployments' handles (composed layout), or the steps' configs to run
        them in this replica (fused layout)."""
        from tala_ray.monitoring.prediction_log import PredictionLogWriter

        config = IngressSettings.model_validate(settings)
        app.state.api_keys = load_api_keys(config.api_key_env, config.api_key_file)
        app.state.max_body_bytes = config.max_body_bytes
        self._steps = steps if isinstance(steps, GraphSteps) else local_steps(steps)
        self._log = PredictionLogWriter(
            config.prediction_log_uri,
            config.log_flush_interval_s,
            config.log_max_buffer_rows,
            LOG_COLUMN_TYPES | OPTIONAL_LOG_COLUMN_TYPES,
        )
        self._idempotency = SharedIdempotency(idempotency_store)
        self._routing: RoutingConfig | None = None
        self._singles_in_flight = 0
        self._random = random.Random()
        self._background: set[asyncio.Task[None]] = set()
        self._metrics = serving_metrics()
        prepare_heap_for_serving()

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Bad routing fails the first start; later it is refused and the old routing kept.

        (A failed in-place `reconfigure` makes Serve stop the replica, so it must not raise then.)
        """
        try:
            routing = RoutingConfig.model_validate(user_config)
            if routing.challenger_mode != "off" and "challenger" not in self._steps.credit:
                raise UserError("challenger_mode: needs a credit_challenger deployment in the application")
            if routing.uplift_challenger_mode != "off" and self._steps.uplift_challenger is None:
                raise UserError("uplift_challenger_mode: needs an uplift_challenger deployment in the application")
        except (ValueError, UserError) as error:
            if self._routing is None:
                raise
            log.error("ingress user_config refused, keeping the previous routing: %s", error)
            return
        self._routing = routing
        self._decide_pending.set_max_batch_size(routing.batching.max_batch_size)

    async def __del__(self) -> None:
        """Graceful shutdown: finish shadow scoring, then flush the prediction log (either may be
        missing when `__init__` failed: then only its own error is reported)."""
        background, prediction_log = getattr(self, "_background", None), getattr(self, "_log", None)
        if background:
            await asyncio.wait(list(background), timeout=10)
        if prediction_log is not None:
            prediction_log.close()

    @app.get("/healthz", response_model=HealthResponse, responses=error_responses(400, 413, 503))
    async def healthz(self) -> HealthResponse:
        return HealthResponse(status="ok")

    @app.get("/v1/models", response_model=ModelsResponse, responses=error_responses(400, 401, 413, 503))
    async def models(self) -> ModelsResponse:
        steps = self._steps
        challenger = steps.credit.get("challenger")
        champion_info, uplift_info, policy = await asyncio.gather(
            steps.credit["champion"].info.remote(), steps.uplift.info.remote(), steps.policy.info.remote()
        )
        uplift_challenger = steps.uplift_challenger
        return ModelsResponse(
            credit_champion=champion_info,
            credit_challenger=await challenger.info.remote() if challenger is not None else None,
            uplift=uplift_info,
            uplift_challenger=await uplift_challenger.info.remote() if uplift_challenger is not None else None,
            challenger_mode=self._routing.challenger_mode,
            canary_weight=self._routing.canary_weight,
            uplift_challenger_mode=self._routing.uplift_challenger_mode,
            uplift_canary_weight=self._routing.uplift_canary_weight,
            policy=policy,
            replica=serve.get_replica_context().replica_id.unique_id,
        )

    @app.post(
        "/v1/decisions", response_model=DecisionResponse, responses=DECISION_ERRORS, openapi_extra=OPENAPI_DECISION_BODY
    )
    async def decision(self, request: Request, idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
        """Decide one application, a JSON `DecisionRequest` (together with the replica's other
        pending ones: `batching`)."""
        started = time.perf_counter()
        body = read_decision_body(await request.body(), request.headers.get("content-type"))
        compute = lambda: self._decide_one(PendingDecision(body, idempotency_key, started))  # noqa: E731
        response, replayed = await self._once("decision", idempotency_key, lambda: fingerprint(body), compute)
        self._metrics.decision_latency_ms.observe((time.perf_counter() - started) * 1000, {"endpoint": "decision"})
        return {**response, "replayed": replayed}

    @app.post(
        "/v1/decisions/batch",
        response_model=BatchDecisionResponse,
        responses=DECISION_ERRORS,
        openapi_extra=OPENAPI_REQUEST_BODY,
    )
    async def batch(self, request: Request, idempotency_key: IdempotencyKey = None) -> Response:
        """Decide up to `max_batch_applications` applications (JSON `BatchDecisionRequest`, or an
        Arrow IPC stream with `Content-Type: application/vnd.apache.arrow.stream`); more is refused with 413."""
        started = time.perf_counter()
        body = read_batch_body(
            await request.body(), request.headers.get("content-type"), self._routing.max_batch_applications
        )
        batch_id = str(uuid.uuid4())

        async def compute() -> list[dict[str, Any]]:
            if body.by_id is None:
                return await self._decide(body.tables, [started], [idempotency_key], batch_id)
            ids = [r.applicant_id for r in body.by_id]
            return await self._decide(await self._store_tables(body.by_id), [started], [idempotency_key], batch_id, ids)

        responses, replayed = await self._once("batch", idempotency_key, body.fingerprint, compute)
        self._metrics.decision_latency_ms.observe((time.perf_counter() - started) * 1000, {"endpoint": "batch"})
        batch_id = responses[0]["request_id"].split(":")[0] if replayed else batch_id
        return batch_response(batch_id, responses, replayed)

    @app.post("/v1/events", response_model=EventsResponse, responses=EVENT_ERRORS)
    async def events(self, request: Request) -> EventsResponse:
        """Append a batch of raw events (JSON `EventsRequest`) to the event topic; answered once the
        broker holds them all (durable). An event the consumers would quarantine is a 422 naming it."""
        table = read_events_body(await request.body(), request.headers.get("content-type"))
        unavailable = await self._steps.online_store.publish.remote(table)
        if unavailable is not None:
            raise store_error(unavailable)
        return EventsResponse(accepted=table.num_rows)

    async def _store_tables(self, requests: list[ApplicationByIdRequest]) -> RawTables:
        """The raw tables of applications by applicant id; 404 naming unknown ids, 503 when the store is down."""
        read = await read_by_id(self._steps, requests)
        if read.tables is None:
            raise store_error(read.unavailable, read.missing)
        return read.tables

    async def _decide_one(self, pending: PendingDecision) -> dict[str, Any]:
        """One single decision, decided with the replica's other pending ones (waiting for more only
        when others are in flight: `BatchingConfig.wait_s`); its 404 or 503 raised here."""
        self._singles_in_flight += 1
        self._decide_pending.set_batch_wait_timeout_s(self._routing.batching.wait_s(self._singles_in_flight))
        try:
            result = await self._decide_pending(pending)
        finally:
            self._singles_in_flight -= 1
        if isinstance(result, HTTPException):
            raise result
        return result

    async def _once(
        self, endpoint: str, key: str | None, body_fingerprint: Callable[[], str], compute: Any
    ) -> tuple[Any, bool]:
        """Run `compute` once per idempotency key (or always, without a key); map errors to HTTP.
        `body_fingerprint` is called only with a key."""
        try:
            if key is None:
                return await compute(), False
            return await self._idempotency.run_once(f"{endpoint}:{key}", body_fingerprint(), compute)
        except IdempotencyConflict:
            detail = [{"loc": ["header", "Idempotency-Key"], "msg": "already used with a different request body"}]
            raise HTTPException(status_code=409, detail=detail) from None
        except HTTPException:  # a decision by id's 404 or 503, answered as it is
            raise
        except UserError:  # answered 422 by `error_body` (its message cut short)
            self._metrics.errors.inc(tags={"stage": endpoint, "kind": "user_error"})
            raise
        except Exception:
            self._metrics.errors.inc(tags={"stage": endpoint, "kind": "internal"})
            raise

    def _choose_role(self) -> Role:
        routing = self._routing
        if routing.challenger_mode == "canary" and self._random.random() < routing.canary_weight:
            return "challenger"
        return "champion"

    def _uplift_roles(self, count: int) -> list[Role] | None:
        """Which uplift model's effects decide each application: None (the champion's) unless the uplift
        challenger is a canary, then the challenger's for an `uplift_canary_weight` share."""
        routing = self._routing
        if routing.uplift_challenger_mode != "canary":
            return None
        draws = [self._random.random() for _ in range(count)]
        return ["challenger" if draw < routing.uplift_canary_weight else "champion" for draw in draws]

    @serve.batch(max_batch_size=BatchingConfig().max_batch_size)  # `reconfigure` and `_decide_one` set the rest
    async def _decide_pending(self, pending: list[PendingDecision]) -> list[dict[str, Any] | HTTPException]:
        """Concurrent single decisions of this replica: the raw bodies in one pass of the graph (one call
        per step), those by applicant id in another after one read of the store (an unknown id or a store
        that is down answers its own requests with the `HTTPException`)."""
        results: list[dict[str, Any] | HTTPException | None] = [None] * len(pending)
        raw = [i for i, p in enumerate(pending) if not isinstance(p.body, ApplicationByIdRequest)]
        if raw:
            tables = request_columns([pending[i].body for i in raw])
            await self._decide_group(pending, raw, tables, results)
        by_id = [i for i, p in enumerate(pending) if isinstance(p.body, ApplicationByIdRequest)]
        if by_id:
            read = await read_by_id(self._steps, [pending[i].body for i in by_id])
            if read.missing:
                missing = set(read.missing)
                for i in by_id:
                    if pending[i].body.applicant_id in missing:
                        results[i] = store_error(None, [pending[i].body.applicant_id])
                by_id = [i for i in by_id if results[i] is None]
                read = await read_by_id(self._steps, [pending[i].body for i in by_id]) if by_id else read
            if read.tables is None and by_id:
                for i in by_id:
                    results[i] = store_error(read.unavailable, read.missing)
            elif by_id:
                await self._decide_group(pending, by_id, read.tables, results)
        return results

    async def _decide_group(
        self, pending: list[PendingDecision], positions: list[int], tables: RawTables, results: list[Any]
    ) -> None:
        """Decide the pending requests at `positions` (whose raw tables are `tables`) into `results`."""
        chosen = [pending[i] for i in positions]
        ids = [p.body.applicant_id for p in chosen] if isinstance(chosen[0].body, ApplicationByIdRequest) else None
        decided = await self._decide(
            tables, [p.started for p in chosen], [p.idempotency_key for p in chosen], None, ids
        )
        for i, response in zip(positions, decided, strict=True):
            results[i] = response

    async def _decide(
        self,
        tables: RawTables,
        started: list[float],
        idempotency_keys: list[str | None],
        batch_id: str | None,
        applicant_ids: list[int] | None = None,
    ) -> list[dict[str, Any]]:
        """The applications through the graph (`steps.decide`); log and count every decision.

        `tables`: the raw tables of the applications (a batch request's, or pending single
        decisions'); `started` and `idempotency_keys`: one per request (a batch is one request).
        Request ids are `<batch_id>:<position>` in a batch, fresh UUIDs for single decisions.
        `applicant_ids`: of applications decided by id (logged with the application, for consistency checks).
        """
        count = row_count(tables["applications"])
        roles = [self._choose_role() for _ in range(count)]
        decided = await decide(self._steps, tables, roles, self._uplift_roles(count))
        finished = time.perf_counter()
        if batch_id is None:
            ids = [str(uuid.uuid4()) for _ in range(count)]
            keys, latencies = idempotency_keys, [(finished - s) * 1000 for s in started]
        else:
            ids = [f"{batch_id}:{i}" for i in range(count)]
            keys, latencies = idempotency_keys * count, [(finished - started[0]) * 1000] * count
        responses = decided.responses(ids)
        columns = log_columns(responses, decided.decisions, "decision", keys, latencies, datetime.now(UTC))
        columns |= application_log_columns(tables["applications"], applicant_ids)
        self._log.append_columns(columns, count, features=decided.features)
        outcomes = Counter((r["decision"], r["model_versions"]["credit_role"]) for r in responses)
        for (outcome, role), n in outcomes.items():
            self._metrics.decisions.inc(n, tags={"outcome": outcome, "credit_role": role})
        if self._routing.challenger_mode == "shadow":
            self._spawn(self._shadow(decided, ids))
        if self._routing.uplift_challenger_mode == "shadow":
            self._spawn(self._uplift_shadow(decided, ids))
        return responses

    async def _shadow(self, decided: Decided, ids: list[str]) -> None:
        """The challenger scores the same applications; its decisions are logged, never returned."""
        started = time.perf_counter()
        try:
            shadow = await rescore(self._steps, decided, ["challenger"] * len(ids))
        except Exception:
            self._metrics.errors.inc(tags={"stage": "shadow", "kind": "internal"})
            log.exception("shadow scoring failed")
            return
        latency_ms = (time.perf_counter() - started) * 1000
        shadows = shadow.responses(ids)
        count = len(shadows)
        columns = log_columns(
            shadows, shadow.decisions, "shadow", [None] * count, [latency_ms] * count, datetime.now(UTC)
        )
        self._log.append_columns(columns, count, features=shadow.features)

    async def _uplift_shadow(self, decided: Decided, ids: list[str]) -> None:
        """The uplift challenger's effects for the same applications, and the decisions they would make:
        logged beside the champion's (role `uplift_shadow`, the same request ids, what each would change),
        the changes counted (`tala_uplift_shadow_decisions`); never returned."""
        started = time.perf_counter()
        try:
            shadow = await shadow_uplift(self._steps, decided)
        except Exception:
            self._metrics.errors.inc(tags={"stage": "uplift_shadow", "kind": "internal"})
            log.exception("uplift shadow failed")
            return
        latency_ms = (time.perf_counter() - started) * 1000
        changes = decision_changes(decided.decisions, shadow.decisions)
        for change, n in Counter(changes).items():
            self._metrics.uplift_shadow_decisions.inc(n, tags={"change": change})
        shadows = shadow.responses(ids)
        count = len(shadows)
        columns = log_columns(
            shadows, shadow.decisions, "uplift_shadow", [None] * count, [latency_ms] * count, datetime.now(UTC)
        )
        self._log.append_columns(columns | {"changed_by_uplift_challenger": changes}, count, features=shadow.features)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
