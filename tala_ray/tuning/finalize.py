"""After tuning: test the refitted winner once, compare it with the baseline and the truth, register it."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import roc_auc_score

from tala_ray.core.registry import ArtifactManifest, ArtifactMetadata, Registry
from tala_ray.models.report import calibration_png, report_markdown, roc_png
from tala_ray.models.training_data import Splits, TrainingFrame, combine, true_default_probability
from tala_ray.tuning.families import FAMILY_BUILDERS, FamilyBuilder

if TYPE_CHECKING:
    from tala_ray.tuning.runner import TrialCounts
    from tala_ray.tuning.spec import ExperimentSpec

log = logging.getLogger(__name__)


def baseline_scores(splits: Splits, seed: int) -> np.ndarray:
    """Test-set PDs of a default logistic regression fitted on train + valid (the lift's reference)."""
    builder = FAMILY_BUILDERS["logistic"]
    model = builder.refit({}, seed, combine(splits.train, splits.valid))
    return builder.predict(model, splits.test)


def register_winner(
    spec: ExperimentSpec,
    builder: FamilyBuilder,
    model: Any,
    best_params: dict[str, Any],
    splits: Splits,
    registry_uri: str,
    counts: TrialCounts,
    experiment_seconds: float,
) -> tuple[ArtifactManifest, dict[str, Any]]:
    """Evaluate on the untouched test split, write the report and the model; champion if there is none yet."""
    test = splits.test
    scores = builder.predict(model, test)
    metrics = builder.evaluate(model, test)
    curves = {spec.model.kind: scores}
    report: dict[str, Any] = {
        "experiment": spec.name,
        "family": spec.model.kind,
        "best_params": best_params,
        "test_metrics": metrics,
        "test_rows": int(len(test.target)),
        "quarantined_rows": test.lineage.quarantined_rows,
        "trials": vars(counts),
        "experiment_seconds": round(experiment_seconds, 2),
    }
    if builder.registry_kind == "credit":
        baseline = baseline_scores(splits, spec.seed)
        curves["logistic baseline"] = baseline
        report["baseline_logistic_auc"] = float(roc_auc_score(test.target, baseline))
        report["lift_over_baseline_auc"] = metrics["auc"] - report["baseline_logistic_auc"]
        if splits.test.lineage.world and test.treatment is not None:
            truth = true_default_probability(test.lineage.world, test.ids, test.treatment)
            curves["true PD (best possible)"] = truth
            report["best_possible_auc"] = float(roc_auc_score(test.target, truth))
            report["gap_to_best_possible_auc"] = report["best_possible_auc"] - metrics["auc"]

    report_files = {"roc.png": roc_png(test.target, curves)}
    if builder.registry_kind == "credit":
        report_files["calibration.png"] = calibration_png(test.target, scores)
    report["model"] = spec.model_name
    report_files["report.json"] = json.dumps(report, indent=1, sort_keys=True, default=str).encode()
    report_files["report.md"] = report_markdown(report).encode()
    manifest = register_with_lineage(
        spec,
        builder.registry_kind,
        test,
        best_params,
        metrics,
        report,
        {**builder.files(model), **report_files},
        registry_uri,
    )
    return manifest, report


def register_with_lineage(
    spec: ExperimentSpec,
    kind: str,
    test: TrainingFrame,
    best_params: dict[str, Any],
    metrics: dict[str, float],
    report: dict[str, Any],
    files: dict[str, bytes],
    registry_uri: str,
) -> ArtifactManifest:
    """Register model and report files with their lineage; champion if the name has none yet.

    Sets `report["version"]`. Shared by the credit and uplift experiments.
    """
    registry = Registry(registry_uri)
    metadata = ArtifactMetadata(
        kind=kind,
        family=spec.model.kind,
        feature_set_version=test.lineage.feature_set_version,
        feature_names=list(test.features.columns),
        data_content_hash=test.lineage.data_content_hash,
        spec=spec.model_dump(mode="json"),
        params=best_params,
        metrics=metrics,
        extra={k: v for k, v in report.items() if k not in ("test_metrics", "best_params")},
    )
    manifest = registry.register(spec.model_name, files, metadata)
    report["version"] = manifest.version
    if "champion" not in registry.aliases(spec.model_name):
        registry.set_alias(spec.model_name, "champion", manifest.version)
    log.info("registered %s@%s: test %s", manifest.name, manifest.version, metrics)
    return manifest
