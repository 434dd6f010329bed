"""Metrics against hand-checkable cases and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tala_ray.models.metrics import binary_metrics, expected_calibration_error, ks_statistic


def test_perfect_ranking():
    y = np.array([0, 0, 1, 1])
    metrics = binary_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]))
    assert metrics["auc"] == 1.0 and metrics["gini"] == 1.0 and metrics["ks"] == 1.0


def test_random_scores_near_half_and_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 5000)
    p = rng.random(5000)
    metrics = binary_metrics(y, p)
    assert metrics["auc"] == pytest.approx(roc_auc_score(y, p))
    assert abs(metrics["auc"] - 0.5) < 0.03 and metrics["ks"] < 0.06


def test_calibration_error_small_for_calibrated_large_for_shifted():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.05, 0.5, 20000)
    y = (rng.random(20000) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.02
    assert expected_calibration_error(y, np.clip(p + 0.2, 0, 1)) > 0.15


def test_ks_is_max_cdf_gap():
    y = np.array([0, 0, 0, 1, 1, 1])
    assert ks_statistic(y, np.array([0.1, 0.2, 0.6, 0.3, 0.7, 0.8])) == pytest.approx(2 / 3)


def test_single_class_is_refused():
    with pytest.raises(ValueError, match="both classes"):
        binary_metrics(np.zeros(5), np.full(5, 0.1))
