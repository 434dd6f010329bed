"""The model-graph deployments: feature transform, credit model, uplift model, decision policy.

Single decisions call the `@serve.batch` methods (one application or feature row each), so
concurrent requests share one vectorised call; a batch request sends all its applications to the
`*_many` methods in one handle call per step, as numpy columns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ray import serve

from tala_ray.features.online import request_columns
from tala_ray.policy import PolicyParams
from tala_ray.serving.args import BatchingConfig, FeatureTransformConfig
from tala_ray.serving import graph
from tala_ray.serving.graph import Columns, RawTables
from tala_ray.serving.metrics import serving_metrics
from tala_ray.serving.model_slot import ModelConfig, ModelSlot

log = logging.getLogger("ray.serve")


def _apply_batching(method: Any, batching: BatchingConfig) -> None:
    method.set_max_batch_size(batching.max_batch_size)
    method.set_batch_wait_timeout_s(batching.batch_wait_timeout_s)


def _measured(stage: str, compute: Callable[[], list[Any] | Columns], rows: Callable[[Any], int] = len) -> Any:
    """`compute()`, with its rows and milliseconds recorded under `stage` (`tala_batch_size`, `tala_model_latency_ms`)."""
    started = time.perf_counter()
    result = compute()
    serving_metrics().observe_batch(stage, rows(result), (time.perf_counter() - started) * 1000)
    return result


def _replica_id() -> str:
    """Which replica answered (it stays the same across in-place `reconfigure` calls)."""
    return serve.get_replica_context().replica_id.unique_id


@serve.deployment(name="FeatureTransform", max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.2})
class FeatureTransform:
    """Raw application (events, loans, device) -> one feature row, with the shared feature code."""

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        _apply_batching(self.transform, FeatureTransformConfig.model_validate(user_config).batching)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def transform(self, requests: list[Any]) -> list[Columns]:
        """One application request per call (its features: one-row columns); concurrent calls are batched."""
        return graph.split_rows(self.transform_many(request_columns(requests)))

    def transform_many(self, tables: RawTables) -> Columns:
        """All applications of a batch request (its raw tables) in one call."""
        return _measured("features", lambda: graph.table_features(tables), graph.row_count)


@serve.deployment(name="CreditModel", max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.2})
class CreditModel:
    """Default probability and per-feature contributions (for reason codes) from a registry model."""

    def __init__(self) -> None:
        from tala_ray.registry import load_credit_predictor

        self._slot = ModelSlot("credit", load_credit_predictor)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        config = ModelConfig.model_validate(user_config)
        self._slot.apply(config)
        for method in (self.score, self.score_explained, self.explain):
            _apply_batching(method, config.batching)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def score(self, rows: list[Columns]) -> list[dict[str, Any]]:
        """One feature row per call (a single decision); concurrent calls are batched."""
        return self.score_many(graph.concat_rows(rows))

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def score_explained(self, rows: list[Columns]) -> list[dict[str, Any]]:
        """`score` with each row's contributions: across processes (the composed layout),
        explaining every row costs less than a second round trip for the declines."""
        return self.score_many(graph.concat_rows(rows), explain=True)

    def score_many(self, features: Columns, explain: bool = False) -> list[dict[str, Any]]:
        """Default probability and model version for each row (and contributions with `explain`)."""
        predictor, role = self._slot.predictor, self._slot.config.role
        return _measured(f"credit_{role}", lambda: graph.credit_scores(predictor, role, features, explain))

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def explain(self, rows: list[Columns]) -> list[dict[str, float]]:
        """One declined row per call; concurrent calls are batched."""
        return self.explain_many(graph.concat_rows(rows))

    def explain_many(self, features: Columns) -> list[dict[str, float]]:
        """Per-feature contributions to each row's risk score (asked for declines only)."""
        predictor = self._slot.predictor
        return _measured(f"explain_{self._slot.config.role}", lambda: graph.credit_contributions(predictor, features))

    def info(self) -> dict[str, Any]:
        return self._slot.info() | {"replica": _replica_id()}


@serve.deployment(name="UpliftModel", max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.2})
class UpliftModel:
    """The intervention's reduction in default probability, from a registry model."""

    def __init__(self) -> None:
        from tala_ray.models.uplift import load_uplift_predictor

        self._slot = ModelSlot("uplift", load_uplift_predictor)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        config = ModelConfig.model_validate(user_config)
        self._slot.apply(config)
        _apply_batching(self.effect, config.batching)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def effect(self, rows: list[Columns]) -> list[dict[str, Any]]:
        """One feature row per call; concurrent calls are batched."""
        return self.effect_many(graph.concat_rows(rows))

    def effect_many(self, features: Columns) -> list[dict[str, Any]]:
        """The intervention's uplift and model version for each row."""
        predictor = self._slot.predictor
        return _measured("uplift", lambda: graph.uplift_effects(predictor, features))

    def info(self) -> dict[str, Any]:
        return self._slot.info() | {"replica": _replica_id()}


@serve.deployment(name="DecisionPolicy", max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.1})
class DecisionPolicy:
    """Decision economics; its parameters are the `user_config`, changed without restarting replicas."""

    def __init__(self) -> None:
        self._descriptions = graph.feature_descriptions()
        self._params: PolicyParams | None = None

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Invalid parameters fail the first start; later they are refused and the old ones kept."""
        try:
            self._params = PolicyParams.model_validate(user_config)
        except ValueError as error:
            if self._params is None:
                raise
            log.error("policy user_config refused, keeping the previous parameters: %s", error)

    def decide(self, items: dict[str, list[Any]]) -> list[dict[str, Any]]:
        """items (one list each): default_probability, uplift, amount, term_days and optionally
        contributions -> decision dicts (see `graph.policy_decisions`)."""
        return graph.policy_decisions(self._params, self._descriptions, items)

    def reasons(self, contributions: list[dict[str, float]]) -> list[list[dict[str, Any]]]:
        """Reason codes of declined applications from their credit contributions."""
        return graph.decline_reasons(self._params, self._descriptions, contributions)

    def info(self) -> dict[str, Any]:
        return {"params": self._params.model_dump(mode="json"), "replica": _replica_id()}
