"""After tuning: the winner's report (the family's evaluation plus the experiment's fields) and its registration."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from tala_ray.core.registry import ArtifactManifest, ArtifactMetadata, Registry
from tala_ray.evaluation.held_out import HeldOutEvaluation
from tala_ray.models.training_data import TrainingFrame

if TYPE_CHECKING:
    from tala_ray.tuning.runner import TrialCounts
    from tala_ray.tuning.spec import ExperimentSpec

log = logging.getLogger(__name__)


def winner_report(
    spec: ExperimentSpec,
    best_params: dict[str, Any],
    evaluation: HeldOutEvaluation,
    counts: TrialCounts,
    experiment_seconds: float,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The report (report.json's figures) and its files: the evaluation's plots, report.json and report.md."""
    report: dict[str, Any] = {
        "experiment": spec.name,
        "model": spec.model_name,
        "family": spec.model.kind,
        "best_params": best_params,
        "test_metrics": evaluation.metrics,
        **evaluation.figures,
        "trials": vars(counts),
        "experiment_seconds": round(experiment_seconds, 2),
    }
    files = {
        **evaluation.files,
        "report.json": json.dumps(report, indent=1, sort_keys=True, default=str).encode(),
        "report.md": evaluation.markdown(report).encode(),
    }
    return report, files


def register_with_lineage(
    spec: ExperimentSpec,
    kind: str,
    test: TrainingFrame,
    report: dict[str, Any],
    files: dict[str, bytes],
    registry_uri: str,
) -> ArtifactManifest:
    """Register model and report files with their lineage (from `test`); champion if the name has none yet.

    Sets `report["version"]`.
    """
    registry = Registry(registry_uri)
    metadata = ArtifactMetadata(
        kind=kind,
        family=spec.model.kind,
        feature_set_version=test.lineage.feature_set_version,
        feature_names=list(test.features.columns),
        data_content_hash=test.lineage.data_content_hash,
        spec=spec.model_dump(mode="json"),
        params=report["best_params"],
        metrics=report["test_metrics"],
        extra={k: v for k, v in report.items() if k not in ("test_metrics", "best_params")},
    )
    manifest = registry.register(spec.model_name, files, metadata)
    report["version"] = manifest.version
    if "champion" not in registry.aliases(spec.model_name):
        registry.set_alias(spec.model_name, "champion", manifest.version)
    log.info("registered %s@%s: test %s", manifest.name, manifest.version, report["test_metrics"])
    return manifest
