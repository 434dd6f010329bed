"""The model-graph deployments: online store, feature transform, credit model, uplift model, decision policy.

The ingress sends every step all the applications it decides at once (a batch request, or the
concurrent single decisions it grouped), as numpy columns: one call per step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ray import serve

from tala_ray.features.columns import row_count
from tala_ray.policy.decision import PolicyParams
from tala_ray.serving import graph
from tala_ray.serving.graph import Columns, RawTables
from tala_ray.serving.heap import prepare_heap_for_serving
from tala_ray.serving.metrics import serving_metrics
from tala_ray.serving.model_slot import ModelConfig, ModelSlot
from tala_ray.serving.online_store import OnlineStoreConfig, StoreClient, StoreRead

log = logging.getLogger("ray.serve")


def _measured(stage: str, compute: Callable[[], Any], rows: Callable[[Any], int] = len) -> Any:
    """`compute()`, with its rows and milliseconds recorded under `stage` (`tala_batch_size`,
    `tala_model_latency_ms`)."""
    started = time.perf_counter()
    result = compute()
    serving_metrics().observe_batch(stage, rows(result), (time.perf_counter() - started) * 1000)
    return result


def _replica_id() -> str:
    """Which replica answered (it stays the same across in-place `reconfigure` calls)."""
    return serve.get_replica_context().replica_id.unique_id


@serve.deployment(name="OnlineStore", max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.1})
class OnlineStoreStep:
    """Applications by applicant id -> their raw tables from the online store; pushed events -> the topic."""

    def __init__(self) -> None:
        self._client: StoreClient | None = None

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        self._client = StoreClient(OnlineStoreConfig.model_validate(user_config))

    def read(self, requests: list[Any]) -> StoreRead:
        """The raw tables of `ApplicationByIdRequest`s, or the unknown ids, or why the store is unavailable."""
        return _measured("online_store", lambda: self._client.read(requests), lambda _: len(requests))

    def publish(self, events: Any) -> str | None:
        """Append a contract-schema events table to the topic; None once durable, else why not."""
        return self._client.publish(events)


@serve.deployment(name="FeatureTransform", max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.2})
class FeatureTransform:
    """Raw applications (events, loans, device) -> feature rows, with the shared feature code."""

    def transform(self, tables: RawTables) -> Columns:
        """The features of every application of the raw tables."""
        return _measured("features", lambda: graph.table_features(tables), row_count)


@serve.deployment(name="CreditModel", max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.2})
class CreditModel:
    """Default probability and per-feature contributions (for reason codes) from a registry model."""

    def __init__(self) -> None:
        self._slot = ModelSlot("credit")

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        self._slot.apply(ModelConfig.model_validate(user_config))
        prepare_heap_for_serving()

    def score(self, features: Columns) -> list[dict[str, Any]]:
        """Default probability, model version and role for each row."""
        predictor, role = self._slot.predictor, self._slot.config.role
        return _measured(f"credit_{role}", lambda: graph.credit_scores(predictor, role, features))

    def explain(self, features: Columns) -> graph.Contributions:
        """Per-feature contributions to each row's risk score (asked for declines only)."""
        predictor = self._slot.predictor
        return _measured(f"explain_{self._slot.config.role}", lambda: graph.credit_contributions(predictor, features))

    def info(self) -> dict[str, Any]:
        return self._slot.info() | {"replica": _replica_id()}


@serve.deployment(name="UpliftModel", max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.2})
class UpliftModel:
    """The intervention's reduction in default probability, from a registry model."""

    def __init__(self) -> None:
        self._slot = ModelSlot("uplift")

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        self._slot.apply(ModelConfig.model_validate(user_config))
        prepare_heap_for_serving()

    def effect(self, features: Columns) -> list[dict[str, Any]]:
        """The intervention's uplift (every arm's with several) and model version for each row."""
        predictor = self._slot.predictor
        stage = "uplift" if self._slot.config.role == "champion" else "uplift_challenger"
        return _measured(stage, lambda: graph.uplift_effects(predictor, features))

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
        """items (one list each): default_probability, uplift, amount, term_days -> decision dicts
        (see `graph.policy_decisions`)."""
        return graph.policy_decisions(self._params, items)

    def reasons(self, contributions: graph.Contributions) -> list[list[dict[str, Any]]]:
        """Reason codes of declined applications from their credit contributions."""
        return graph.decline_reasons(self._params, self._descriptions, contributions)

    def info(self) -> dict[str, Any]:
        return {"params": self._params.model_dump(mode="json"), "replica": _replica_id()}
