"""A credit model judged on the test split: its metrics against a logistic baseline and, on a synthetic
world, against the best possible AUC (the true PDs); ROC and calibration plots; the Markdown report."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from tala_ray.evaluation.held_out import HeldOutEvaluation
from tala_ray.evaluation.plots import calibration_png, roc_png
from tala_ray.evaluation.truth import true_default_probability
from tala_ray.models.credit import ESTIMATORS
from tala_ray.models.metrics import binary_metrics
from tala_ray.models.training_data import Splits, combine


def baseline_scores(splits: Splits, seed: int) -> np.ndarray:
    """Test-set PDs of a default logistic regression fitted on train + valid (the lift's reference)."""
    train = combine(splits.train, splits.valid)
    model = ESTIMATORS["logistic"](seed=seed).fit(train.features, train.target)
    return model.predict_proba(splits.test.features)[:, 1]


def evaluate_credit(scores: np.ndarray, splits: Splits, seed: int, family: str) -> HeldOutEvaluation:
    """Metrics of the model's test PDs `scores`, its lift over the baseline and its gap to the truth."""
    test = splits.test
    metrics = binary_metrics(test.target, scores)
    baseline = baseline_scores(splits, seed)
    curves = {family: scores, "logistic baseline": baseline}
    figures: dict[str, Any] = {
        "test_rows": int(len(test.target)),
        "quarantined_rows": test.lineage.quarantined_rows,
        "baseline_logistic_auc": float(roc_auc_score(test.target, baseline)),
    }
    figures["lift_over_baseline_auc"] = metrics["auc"] - figures["baseline_logistic_auc"]
    if test.lineage.world and test.treatment is not None:
        truth = true_default_probability(test.lineage.world, test.ids, test.treatment)
        curves["true PD (best possible)"] = truth
        figures["best_possible_auc"] = float(roc_auc_score(test.target, truth))
        figures["gap_to_best_possible_auc"] = figures["best_possible_auc"] - metrics["auc"]
    files = {"roc.png": roc_png(test.target, curves), "calibration.png": calibration_png(test.target, scores)}
    return HeldOutEvaluation(metrics=metrics, figures=figures, markdown=report_markdown, files=files)


def report_markdown(report: dict[str, Any]) -> str:
    """A human-readable summary of `report` (the same figures as report.json)."""
    lines = [f"# {report['model']} ({report['family']})", "", f"Experiment `{report['experiment']}`.", ""]
    lines += ["| metric | test |", "| --- | --- |"]
    lines += [f"| {name} | {value:.4f} |" for name, value in report["test_metrics"].items()]
    lines.append("")
    for key in ("best_possible_auc", "gap_to_best_possible_auc", "baseline_logistic_auc", "lift_over_baseline_auc"):
        if report.get(key) is not None:
            lines.append(f"- {key.replace('_', ' ')}: {report[key]:.4f}")
    trials = report["trials"]
    lines += [
        f"- trials: {trials['finished']} finished, {trials['errored']} failed, {trials['retries']} retried crashes",
        f"- experiment time: {report['experiment_seconds']:.1f} s",
        f"- best hyperparameters: `{json.dumps(report['best_params'], sort_keys=True)}`",
        "",
        "![ROC](roc.png) ![Calibration](calibration.png)",
        "",
    ]
    return "\n".join(lines)
