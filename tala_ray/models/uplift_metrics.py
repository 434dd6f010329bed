"""Uplift metrics: ATE with a confidence interval, Qini / AUUC, PEHE, policy value, segments, overlap.

Effects are on the outcome the model was fitted on; for the lending models that is repayment,
so a positive effect is a reduction in default probability.

Observed-outcome metrics use doubly robust (AIPW) pseudo-outcomes
`psi = mu1 - mu0 + T (Y - mu1) / e - (1 - T) (Y - mu0) / (1 - e)`, whose mean is the average
effect and whose mean over any segment chosen from X is that segment's average effect, with
cross-fitted outcome models `mu0`, `mu1` and propensity `e` (estimated unless given).
The same Qini formula takes either those pseudo-outcomes ("DR Qini", computable on real data)
or the true individual effects of the synthetic world ("oracle Qini"): the curve at fraction q
is the total effect of the top q·n rows ranked by the score, minus q times the total effect of
everyone (the random ranking). The coefficient is the mean height of that curve over q, per row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# Causal validation scores computed on held-out data without ground truth (all: larger is better).
UPLIFT_METRIC_NAMES = ("r_score", "dr_qini", "dr_auuc")


def _z(alpha: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(1 - alpha / 2))


@dataclass(frozen=True)
class EffectEstimate:
    """A mean effect with its standard error and (1 - alpha) normal confidence interval."""

    estimate: float
    std_error: float
    lower: float
    upper: float
    n: int

    def covers(self, value: float) -> bool:
        return self.lower <= value <= self.upper

    def as_dict(self) -> dict[str, float]:
        return {
            "estimate": self.estimate,
            "std_error": self.std_error,
            "lower": self.lower,
            "upper": self.upper,
            "n": self.n,
        }


def mean_with_ci(values: np.ndarray, alpha: float = 0.05) -> EffectEstimate:
    """Mean of per-row contributions with a normal-approximation interval."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    mean = float(np.mean(values))
    std_error = float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    z = _z(alpha)
    return EffectEstimate(mean, std_error, mean - z * std_error, mean + z * std_error, n)


def naive_difference(y: np.ndarray, t: np.ndarray, alpha: float = 0.05) -> EffectEstimate:
    """Difference in mean outcome, treated minus control, with Welch's standard error (no adjustment)."""
    y, t = np.asarray(y, dtype=np.float64), np.asarray(t)
    treated, control = y[t == 1], y[t == 0]
    estimate = float(treated.mean() - control.mean())
    std_error = float(np.sqrt(treated.var(ddof=1) / len(treated) + control.var(ddof=1) / len(control)))
    z = _z(alpha)
    return EffectEstimate(estimate, std_error, estimate - z * std_error, estimate + z * std_error, len(y))


@dataclass(frozen=True)
class Nuisance:
    """Cross-fitted outcome predictions under control and treatment, and the propensity."""

    mu0: np.ndarray
    mu1: np.ndarray
    propensity: np.ndarray


def nuisance_lgbm(classifier: bool, seed: int) -> object:
    """The LightGBM outcome (regressor) or propensity (classifier) model of the evaluation code."""
    from lightgbm import LGBMClassifier, LGBMRegressor

    params = dict(
        n_estimators=150,
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=40,
        random_state=seed,
        n_jobs=1,
        verbose=-1,
    )
    return LGBMClassifier(**params) if classifier else LGBMRegressor(**params)


def cross_fitted_nuisance(
    X: np.ndarray, y: np.ndarray, t: np.ndarray, propensity: np.ndarray | None = None, folds: int = 3, seed: int = 0
) -> Nuisance:
    """Out-of-fold mu0, mu1 (LightGBM per arm) and propensity (LightGBM, unless known and given)."""
    from sklearn.model_selection import StratifiedKFold

    n = len(y)
    mu0, mu1, e = np.zeros(n), np.zeros(n), np.zeros(n)
    strata = t * 2 + (y > np.median(y)).astype(int)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, strata):
        for arm, out in ((0, mu0), (1, mu1)):
            rows = train[t[train] == arm]
            out[test] = nuisance_lgbm(False, seed).fit(X[rows], y[rows]).predict(X[test])
        if propensity is None:
            e[test] = nuisance_lgbm(True, seed).fit(X[train], t[train]).predict_proba(X[test])[:, 1]
    return Nuisance(
        mu0=mu0, mu1=mu1, propensity=np.asarray(propensity, dtype=np.float64) if propensity is not None else e
    )


def dr_pseudo_outcomes(y: np.ndarray, t: np.ndarray, nuisance: Nuisance, clip: float = 0.01) -> np.ndarray:
    """AIPW pseudo-outcomes; their mean over a segment estimates its average effect."""
    e = np.clip(nuisance.propensity, clip, 1 - clip)
    return nuisance.mu1 - nuisance.mu0 + t * (y - nuisance.mu1) / e - (1 - t) * (y - nuisance.mu0) / (1 - e)


# Overlap.
@dataclass(frozen=True)
class OverlapReport:
    low: float
    high: float
    below: int
    above: int
    n: int
    keep: np.ndarray  # boolean mask of rows inside [low, high]

    @property
    def trimmed_share(self) -> float:
        return (self.below + self.above) / self.n if self.n else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "low": self.low,
            "high": self.high,
            "below": self.below,
            "above": self.above,
            "n": self.n,
            "trimmed_share": self.trimmed_share,
        }


def overlap_check(propensity: np.ndarray, low: float = 0.05, high: float = 0.95) -> OverlapReport:
    """Rows whose propensity is outside [low, high]; logs a warning when there are any."""
    propensity = np.asarray(propensity, dtype=np.float64)
    below, above = int(np.sum(propensity < low)), int(np.sum(propensity > high))
    report = OverlapReport(low, high, below, above, len(propensity), (propensity >= low) & (propensity <= high))
    if below or above:
        log.warning(
            "overlap: %d of %d rows have propensity < %.2f and %d > %.2f; they are trimmed (%.1f%%)",
            below,
            report.n,
            low,
            above,
            high,
            100 * report.trimmed_share,
        )
    return report


# Ranking quality.
def qini_curve(score: np.ndarray, gains: np.ndarray, points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """(fractions, curve): per-row total gain of the top fraction by `score`, above the random ranking."""
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(gains, dtype=np.float64)[order])])
    n = len(order)
    fractions = np.linspace(0.0, 1.0, points)
    counts = np.round(fractions * n).astype(int)
    curve = (cumulative[counts] - fractions * cumulative[-1]) / n
    return fractions, curve


def qini_coefficient(score: np.ndarray, gains: np.ndarray) -> float:
    """Mean height of the Qini curve (area between it and the random line), per row."""
    fractions, curve = qini_curve(score, gains)
    return float(np.trapezoid(curve, fractions))


def auuc(score: np.ndarray, gains: np.ndarray) -> float:
    """Area under the uplift (cumulative gain per row) curve, random line included."""
    fractions, curve = qini_curve(score, gains)
    return float(np.trapezoid(curve + fractions * np.mean(gains), fractions))


def pehe(predicted: np.ndarray, true_effect: np.ndarray) -> float:
    """Root mean squared error of the individual effects."""
    return float(np.sqrt(np.mean((np.asarray(predicted) - np.asarray(true_effect)) ** 2)))


# Decisions.
def intervention_benefit(effect: np.ndarray, value_per_effect: np.ndarray | float, cost: float) -> np.ndarray:
    """Profit change from intervening: a default avoided saves value_per_effect (fee + loss); minus the cost.

    The expected profit is linear in the default probability, so this is the difference of
    `tala_ray.policy.economics.expected_profit` with and without the intervention, with
    `value_per_effect = value_of_avoided_default(...)`."""
    return np.asarray(effect, dtype=np.float64) * value_per_effect - cost


def policy_values(
    predicted: np.ndarray,
    true_effect: np.ndarray,
    value_per_effect: np.ndarray | float,
    cost: float,
    to_reported_currency: np.ndarray | float = 1.0,
) -> dict[str, float]:
    """Mean profit change per application of: the model's policy, everyone, no one, and the oracle.

    The model's policy intervenes where its predicted effect is worth the cost; values use the truth.
    `value_per_effect` and `cost` are in each application's currency; each application's profit
    change is multiplied by `to_reported_currency` (a positive rate) before the means are taken.
    """
    true_benefit = intervention_benefit(true_effect, value_per_effect, cost) * to_reported_currency
    model_treats = intervention_benefit(predicted, value_per_effect, cost) > 0
    return {
        "model": float(np.mean(true_benefit * model_treats)),
        "treat_all": float(np.mean(true_benefit)),
        "treat_none": 0.0,
        "oracle": float(np.mean(np.maximum(true_benefit, 0.0))),
        "model_treated_share": float(np.mean(model_treats)),
    }


def segment_effects(
    segments: pd.Series, pseudo_outcomes: np.ndarray, predicted: np.ndarray, true_effect: np.ndarray | None = None
) -> pd.DataFrame:
    """Per segment: rows, DR estimate with CI, the model's mean prediction and (if known) the true mean."""
    rows = []
    for segment, positions in pd.Series(np.arange(len(segments)), index=segments.to_numpy()).groupby(level=0):
        idx = positions.to_numpy()
        estimate = mean_with_ci(pseudo_outcomes[idx])
        row = {
            "segment": segment,
            "n": len(idx),
            "dr_estimate": estimate.estimate,
            "dr_lower": estimate.lower,
            "dr_upper": estimate.upper,
            "predicted": float(np.mean(predicted[idx])),
        }
        if true_effect is not None:
            row["true"] = float(np.mean(true_effect[idx]))
        rows.append(row)
    return pd.DataFrame(rows)


def deciles(score: np.ndarray) -> pd.Series:
    """Decile 1 (lowest) to 10 (highest) of a score, by rank."""
    ranks = pd.Series(np.asarray(score)).rank(method="first")
    return pd.Series(pd.qcut(ranks, 10, labels=False).astype(int) + 1, name="decile")
