"""Performance estimated before labels arrive, from calibrated default probabilities.

Confidence-based performance estimation (as NannyML's CBPE; NannyML itself does not install with
this project's pins: it needs lightgbm < 4.6 and, before 0.12, Jinja2 < 3.1): if the PDs are
calibrated, a loan defaults with probability p, so a week's expected default rate is the mean p
(with the Poisson-binomial spread) and the expected ROC curve has at each score threshold the
expected true-positive rate sum(p above) / sum(p) against the expected false-positive rate
sum(1 - p above) / sum(1 - p). The PDs are first calibrated on the reference's labels (logistic on
the PD's log-odds, two parameters: an isotonic map sends the low-score runs without a default to zero
and overstates the AUC), the ranking stays the model's. Valid without concept drift only: when the
risk given the features changes, the estimate keeps believing the old relationship; realized
performance shows it later.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression

from tala_ray.monitoring.config import EstimatedRule
from tala_ray.monitoring.reference import Reference

Calibrator = Callable[[np.ndarray], np.ndarray]


def _log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)).reshape(-1, 1)


def calibrator(reference: Reference, calibrate: bool) -> Calibrator:
    """The map from predicted to calibrated PD learnt on the reference's labels (identity without them)."""
    if not calibrate or reference.defaulted is None or np.unique(reference.defaulted).size < 2:
        return lambda p: np.asarray(p, dtype=float)
    model = LogisticRegression(C=1e6).fit(_log_odds(reference.pd_served), reference.defaulted)
    return lambda p: model.predict_proba(_log_odds(p))[:, 1] if len(p) else np.zeros(0)


def expected_auc(score: np.ndarray, p_default: np.ndarray) -> float:
    """The ROC AUC expected when each row defaults with probability `p_default`, ranked by `score`
    (the area under the expected ROC curve; tied scores form one step)."""
    score, p_default = np.asarray(score, float), np.asarray(p_default, float)
    if len(score) < 2 or p_default.sum() <= 0 or (1 - p_default).sum() <= 0:
        return float("nan")
    order = np.argsort(-score, kind="stable")
    s, p = score[order], p_default[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tpr = np.r_[0.0, np.cumsum(p)[last_of_tie] / p.sum()]
    fpr = np.r_[0.0, np.cumsum(1 - p)[last_of_tie] / (1 - p).sum()]
    return float(np.trapezoid(tpr, fpr))


def expected_rate(p_default: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """The expected default rate and the interval the realized rate falls in with `confidence`."""
    n = len(p_default)
    mean = float(np.mean(p_default))
    spread = norm.ppf(0.5 + confidence / 2) * float(np.sqrt(np.sum(p_default * (1 - p_default)))) / n
    return mean, max(mean - spread, 0.0), min(mean + spread, 1.0)


def estimated_by_vintage(
    decisions: pd.DataFrame, calibrate: Calibrator, rule: EstimatedRule, confidence: float
) -> pd.DataFrame:
    """Per vintage: the estimated AUC of all scored applications (against the reference's) and, for the
    loans lent, the expected default rate (with its interval) and the estimated AUC."""
    rows = []
    for vintage, week in decisions.groupby("vintage", sort=True):
        lent = week[week["lent"]]
        p_lent = calibrate(lent["pd_served"].to_numpy())
        rate, low, high = expected_rate(p_lent, confidence) if len(lent) else (np.nan, np.nan, np.nan)
        rows.append(
            {
                "vintage": vintage,
                "scored": len(week),
                "estimated_auc": expected_auc(week["default_probability"], calibrate(week["default_probability"])),
                "loans": len(lent),
                "expected_default_rate": rate,
                "expected_low": low,
                "expected_high": high,
                "estimated_auc_loans": expected_auc(lent["pd_served"], p_lent),
                "judged": len(week) >= rule.min_rows,
            }
        )
    return pd.DataFrame(rows)


def reference_auc(reference: Reference, calibrate: Calibrator) -> float:
    """The reference's AUC estimated the same way (the yardstick of the weeks' estimates)."""
    scores = reference.scores["default_probability"].to_numpy()
    return expected_auc(scores, calibrate(scores))
