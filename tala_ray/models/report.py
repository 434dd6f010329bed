"""A tuned model's report: ROC and calibration plots (PNG) and the figures as JSON and Markdown."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(5, 5), dpi=100)


def _png(figure: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def roc_png(y_true: np.ndarray, curves: dict[str, np.ndarray]) -> bytes:
    """ROC curves of one or more score vectors (label -> default probability) on the same outcomes."""
    from sklearn.metrics import roc_auc_score, roc_curve

    figure, axes = _figure()
    for label, scores in curves.items():
        false_positive_rate, true_positive_rate, _ = roc_curve(y_true, scores)
        axes.plot(false_positive_rate, true_positive_rate, label=f"{label} (AUC {roc_auc_score(y_true, scores):.3f})")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(
        xlabel="false positive rate (repaid flagged)", ylabel="true positive rate (defaults caught)", title="ROC (test)"
    )
    axes.legend(loc="lower right")
    return _png(figure)


def calibration_png(y_true: np.ndarray, p_default: np.ndarray, bins: int = 10) -> bytes:
    """Observed default rate against mean prediction in equal-count bins."""
    order = np.argsort(p_default, kind="stable")
    chunks = np.array_split(order, min(bins, len(order)))
    predicted = [float(np.mean(p_default[c])) for c in chunks]
    observed = [float(np.mean(y_true[c])) for c in chunks]
    figure, axes = _figure()
    top = max(predicted + observed) * 1.05
    axes.plot([0, top], [0, top], linestyle=":", color="grey", label="perfect calibration")
    axes.plot(predicted, observed, marker="o", label="model")
    axes.set(xlabel="mean predicted PD", ylabel="observed default rate", title="Calibration (test)")
    axes.legend(loc="upper left")
    return _png(figure)


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
