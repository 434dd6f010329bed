"""Discrimination and calibration metrics of a default-probability model (1 = default)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve

from tala_ray.models.uplift_metrics import UPLIFT_METRIC_NAMES

CREDIT_METRIC_NAMES = ("auc", "gini", "ks", "brier", "log_loss", "calibration_error")
METRIC_NAMES = CREDIT_METRIC_NAMES + UPLIFT_METRIC_NAMES

# For each metric, whether larger is better (how a spec's `mode` is checked).
HIGHER_IS_BETTER = {
    "auc": True,
    "gini": True,
    "ks": True,
    "brier": False,
    "log_loss": False,
    "calibration_error": False,
} | {name: True for name in UPLIFT_METRIC_NAMES}


def ks_statistic(y_true: np.ndarray, p_default: np.ndarray) -> float:
    """Kolmogorov-Smirnov: the largest gap between the score distributions of bads and goods."""
    false_positive_rate, true_positive_rate, _ = roc_curve(y_true, p_default)
    return float(np.max(true_positive_rate - false_positive_rate))


def expected_calibration_error(y_true: np.ndarray, p_default: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |observed rate - mean prediction| over equal-count bins of the prediction."""
    order = np.argsort(p_default, kind="stable")
    error = 0.0
    for chunk in np.array_split(order, min(bins, len(order))):
        error += len(chunk) * abs(float(np.mean(y_true[chunk])) - float(np.mean(p_default[chunk])))
    return error / len(order)


def binary_metrics(y_true: np.ndarray, p_default: np.ndarray) -> dict[str, float]:
    """AUC, Gini, KS, Brier score, log loss and calibration error; needs both classes present."""
    y_true = np.asarray(y_true, dtype=np.int64)
    p_default = np.clip(np.asarray(p_default, dtype=np.float64), 1e-7, 1 - 1e-7)
    if np.unique(y_true).size != 2:
        raise ValueError("metrics need both classes (default and repaid) in the evaluation set")
    auc = float(roc_auc_score(y_true, p_default))
    return {
        "auc": auc,
        "gini": 2 * auc - 1,
        "ks": ks_statistic(y_true, p_default),
        "brier": float(brier_score_loss(y_true, p_default)),
        "log_loss": float(log_loss(y_true, p_default, labels=[0, 1])),
        "calibration_error": expected_calibration_error(y_true, p_default),
    }
