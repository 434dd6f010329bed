"""The reports' plots as PNG bytes: ROC and calibration (credit), Qini curves and effects by segment (uplift)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve


def _figure(width: float, height: float, columns: int = 1) -> tuple[Any, np.ndarray]:
    """A figure and its row of `columns` axes, each `width` x `height` inches (matplotlib off-screen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, columns, figsize=(width * columns, height), dpi=100, squeeze=False)
    return figure, axes[0]


def _png(figure: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def roc_png(y_true: np.ndarray, curves: dict[str, np.ndarray]) -> bytes:
    """ROC curves of one or more score vectors (label -> default probability) on the same outcomes."""
    figure, (axes,) = _figure(5, 5)
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
    figure, (axes,) = _figure(5, 5)
    top = max(predicted + observed) * 1.05
    axes.plot([0, top], [0, top], linestyle=":", color="grey", label="perfect calibration")
    axes.plot(predicted, observed, marker="o", label="model")
    axes.set(xlabel="mean predicted PD", ylabel="observed default rate", title="Calibration (test)")
    axes.legend(loc="upper left")
    return _png(figure)


REPAYMENT_GAIN = "repayment gain"  # what a binary (default) model's effects are; a continuous one names its outcome


def qini_png(curves: dict[str, tuple[np.ndarray, np.ndarray]], gain: str = REPAYMENT_GAIN) -> bytes:
    """Qini curves (gain per row above random, by share targeted) with the random line at zero."""
    figure, (axes,) = _figure(6, 4.5)
    for label, (fractions, curve) in curves.items():
        axes.plot(fractions, curve, label=f"{label} (Qini {np.trapezoid(curve, fractions):.4f})")
    axes.axhline(0.0, linestyle=":", color="grey", label="random targeting")
    axes.set(
        xlabel="share of applications targeted (highest predicted effect first)",
        ylabel=f"{gain} per application above random",
        title="Qini curve (test)",
    )
    axes.legend(loc="best", fontsize=8)
    return _png(figure)


def segments_png(segments: dict[str, pd.DataFrame], effect: str = "reduction in default probability") -> bytes:
    """Per segment: the DR estimate with its 95% interval, the model's mean prediction and the truth."""
    figure, axes_list = _figure(6, 4.5, columns=max(1, len(segments)))
    for axes, (name, table) in zip(axes_list, segments.items(), strict=False):  # no segments: one empty panel
        x = np.arange(len(table))
        errors = np.vstack([table["dr_estimate"] - table["dr_lower"], table["dr_upper"] - table["dr_estimate"]])
        axes.errorbar(x - 0.15, table["dr_estimate"], yerr=errors, fmt="o", capsize=3, label="DR estimate (95% CI)")
        axes.plot(x, table["predicted"], "s", label="model mean prediction")
        if "true" in table:
            axes.plot(x + 0.15, table["true"], "x", color="black", label="truth")
        axes.axhline(0.0, linestyle=":", color="grey")
        axes.set_xticks(x, [str(s) for s in table["segment"]])
        axes.set(xlabel=name, ylabel=effect, title=f"Effect by {name} (test)")
        axes.legend(fontsize=8)
    return _png(figure)
