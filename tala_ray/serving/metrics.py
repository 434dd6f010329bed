"""Custom metrics through Ray's metrics API (exported on Ray's Prometheus endpoint as `ray_tala_*`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

LATENCY_BOUNDARIES_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
BATCH_SIZE_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


class ServingMetrics:
    """The service's metrics; create through `serving_metrics()` inside a replica (one set per process)."""

    def __init__(self) -> None:
        from ray.util import metrics

        self.decisions = metrics.Counter(
            "tala_decisions", "Decisions made, by outcome and deciding credit model role.", ("outcome", "credit_role")
        )
        self.model_latency_ms = metrics.Histogram(
            "tala_model_latency_ms", "Time one model batch takes, by stage.", LATENCY_BOUNDARIES_MS, ("stage",)
        )
        self.decision_latency_ms = metrics.Histogram(
            "tala_decision_latency_ms", "Ingress time per request, by endpoint.", LATENCY_BOUNDARIES_MS, ("endpoint",)
        )
        self.batch_size = metrics.Histogram(
            "tala_batch_size", "Items per dynamic batch, by stage.", BATCH_SIZE_BOUNDARIES, ("stage",)
        )
        self.errors = metrics.Counter("tala_errors", "Errors, by stage and kind.", ("stage", "kind"))
        self.model_load_failures = metrics.Counter(
            "tala_model_load_failures", "Model loads that failed (the old model kept serving).", ("model",)
        )
        self.uplift_shadow_decisions = metrics.Counter(
            "tala_uplift_shadow_decisions",
            "Decisions made again with the uplift challenger's effects (shadow), by what that would change: "
            "decision (approve/decline), intervention, limit, or none.",
            ("change",),
        )

    def observe_batch(self, stage: str, size: int, elapsed_ms: float) -> None:
        """Record one dynamic batch of `size` items that took `elapsed_ms`."""
        tags: dict[str, Any] = {"stage": stage}
        self.batch_size.observe(size, tags)
        self.model_latency_ms.observe(elapsed_ms, tags)


@lru_cache(maxsize=1)
def serving_metrics() -> ServingMetrics:
    """The process-wide metrics (Ray registers a metric name once per process)."""
    return ServingMetrics()
