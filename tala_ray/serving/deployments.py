"""The model-graph deployments: feature transform, credit model, uplift model, decision policy.

Single decisions call the `@serve.batch` methods (one application each), so concurrent requests
share one vectorised call; a batch request sends all its applications to the `*_many` methods in
one handle call per step.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from ray import serve

from tala_ray.policy import PolicyParams, decide, reason_codes
from tala_ray.serving.args import BatchingConfig, FeatureTransformConfig
from tala_ray.serving.metrics import serving_metrics
from tala_ray.serving.model_slot import ModelConfig, ModelSlot

FeatureRow = dict[str, Any]
ID_COLUMNS = ("application_id",)
log = logging.getLogger("ray.serve")


def _apply_batching(method: Any, batching: BatchingConfig) -> None:
    method.set_max_batch_size(batching.max_batch_size)
    method.set_batch_wait_timeout_s(batching.batch_wait_timeout_s)


def _replica_id() -> str:
    """Which replica answered (it stays the same across in-place `reconfigure` calls)."""
    return serve.get_replica_context().replica_id.unique_id


def _feature_frame(rows: list[FeatureRow], feature_names: list[str]) -> pd.DataFrame:
    """The rows as a frame with exactly the model's features, in its order."""
    return pd.DataFrame.from_records(rows).reindex(columns=list(feature_names))


@serve.deployment(name="FeatureTransform", max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.2})
class FeatureTransform:
    """Raw application (events, loans, device) -> one feature row, with the shared feature code."""

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        _apply_batching(self.transform, FeatureTransformConfig.model_validate(user_config).batching)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def transform(self, requests: list[Any]) -> list[FeatureRow]:
        """One application per call; concurrent calls are batched."""
        return self.transform_many(requests)

    def transform_many(self, requests: list[Any]) -> list[FeatureRow]:
        """All applications of a batch request in one call."""
        from tala_ray.features.online import features_from_requests

        started = time.perf_counter()
        rows = features_from_requests(list(requests)).to_dict(orient="records")
        serving_metrics().observe_batch("features", len(requests), (time.perf_counter() - started) * 1000)
        return rows


@serve.deployment(name="CreditModel", max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.2})
class CreditModel:
    """Default probability and per-feature contributions (for reason codes) from a registry model."""

    def __init__(self) -> None:
        from tala_ray.registry import load_credit_predictor

        self._slot = ModelSlot("credit", load_credit_predictor)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        config = ModelConfig.model_validate(user_config)
        self._slot.apply(config)
        _apply_batching(self.score, config.batching)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def score(self, rows: list[FeatureRow]) -> list[dict[str, Any]]:
        """One feature row per call; concurrent calls are batched."""
        return self.score_many(rows)

    def score_many(self, rows: list[FeatureRow]) -> list[dict[str, Any]]:
        """Default probability, contributions and model version for each row."""
        started = time.perf_counter()
        predictor, config = self._slot.predictor, self._slot.config
        frame = _feature_frame(rows, predictor.feature_names)
        probabilities = np.asarray(predictor.predict_proba(frame), dtype=float)
        contributions = predictor.contributions(frame)
        serving_metrics().observe_batch(f"credit_{config.role}", len(rows), (time.perf_counter() - started) * 1000)
        return [
            {
                "default_probability": float(p),
                "contributions": {k: float(v) for k, v in contributions.iloc[i].items()},
                "version": str(predictor.version),
                "role": config.role,
            }
            for i, p in enumerate(probabilities)
        ]

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
    async def effect(self, rows: list[FeatureRow]) -> list[dict[str, Any]]:
        """One feature row per call; concurrent calls are batched."""
        return self.effect_many(rows)

    def effect_many(self, rows: list[FeatureRow]) -> list[dict[str, Any]]:
        """The intervention's uplift and model version for each row."""
        started = time.perf_counter()
        predictor = self._slot.predictor
        names = getattr(predictor, "feature_names", None) or [k for k in rows[0] if k not in ID_COLUMNS]
        effects = np.asarray(predictor.effect(_feature_frame(rows, names)), dtype=float).reshape(-1)
        serving_metrics().observe_batch("uplift", len(rows), (time.perf_counter() - started) * 1000)
        return [{"uplift": float(e), "version": str(predictor.version)} for e in effects]

    def info(self) -> dict[str, Any]:
        return self._slot.info() | {"replica": _replica_id()}


@serve.deployment(name="DecisionPolicy", max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.1})
class DecisionPolicy:
    """Decision economics; its parameters are the `user_config`, changed without restarting replicas."""

    def __init__(self) -> None:
        from tala_ray.features.definitions import FEATURES

        self._descriptions = {f.name: f.description for f in FEATURES}
        self._params: PolicyParams | None = None

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Invalid parameters fail the first start; later they are refused and the old ones kept."""
        try:
            self._params = PolicyParams.model_validate(user_config)
        except ValueError as error:
            if self._params is None:
                raise
            log.error("policy user_config refused, keeping the previous parameters: %s", error)

    def decide(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """items: default_probability, uplift, amount, term_days, contributions -> decision dicts."""
        params = self._params
        columns = {k: np.array([item[k] for item in items], dtype=float) for k in ("default_probability", "uplift")}
        amounts = np.array([item["amount"] for item in items], dtype=float)
        terms = np.array([item["term_days"] for item in items], dtype=float)
        decisions = decide(columns["default_probability"], columns["uplift"], amounts, terms, params)
        out = []
        for item, decision in zip(items, decisions, strict=True):
            reasons = []
            if decision.decision == "decline":
                reasons = reason_codes(item["contributions"], self._descriptions, params.max_reason_codes)
            out.append({**decision.model_dump(), "reason_codes": [r.model_dump() for r in reasons]})
        return out

    def info(self) -> dict[str, Any]:
        return {"params": self._params.model_dump(mode="json"), "replica": _replica_id()}
