"""What judging a refitted model once on the untouched test split yields, for the registry and the report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HeldOutEvaluation:
    """The model's test metrics, the report's figures and files, and how to write the report up.

    `markdown` renders report.md from the whole report: these figures plus the experiment's own
    fields (experiment, model, family, best_params, test_metrics, trials, experiment_seconds).
    """

    metrics: dict[str, float]
    figures: dict[str, Any]
    markdown: Callable[[dict[str, Any]], str]
    files: dict[str, bytes] = field(default_factory=dict)
