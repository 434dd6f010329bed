"""Uplift metrics: ATE with a confidence interval, Qini / AUUC, PEHE, policy value, segments, overlap.

Effects are on the outcome the model was fitted on; for the lending models that is repayment,
so a positive effect is a reduction in default probability; for a continuous outcome (days late)
it is the treated-minus-control change in its units.

Observed-outcome metrics use doubly robust (AIPW) pseudo-outcomes
`psi = mu1 - mu0 + T (Y - mu1) / e - (1 - T) (Y - mu0) / (1 - e)`, whose mean is the average
effect and whose mean over any segment chosen from X is that segment's average effect, with
cross-fitted outcome models `mu0`, `mu1` and propensity `e` (estimated unless given). With several
arms (treatment codes 0 = none, 1 .. K-1) arm k's pseudo-outcome is
`mu_k - mu_0 + 1[T = k] (Y - mu_k) / e_k - 1[T = 0] (Y - mu_0) / e_0`; one arm is the case K = 2.
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

from tala_ray.data.schema import NO_INTERVENTION

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
    """Cross-fitted outcome predictions under every arm and each arm's propensity (rows x arms; arm 0 = none)."""

    outcome: np.ndarray
    arm_propensity: np.ndarray

    @property
    def mu0(self) -> np.ndarray:
        return self.outcome[:, 0]

    @property
    def mu1(self) -> np.ndarray:
        return self.outcome[:, 1]

    @property
    def propensity(self) -> np.ndarray:
        """P(arm 1 | X): the propensity of the one intervention."""
        return self.arm_propensity[:, 1]


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


def arm_count(t: np.ndarray) -> int:
    """The number of arms of treatment codes 0 .. K-1 (at least two: none and one intervention)."""
    return max(2, int(np.max(t)) + 1) if len(t) else 2


def cross_fitted_nuisance(
    X: np.ndarray, y: np.ndarray, t: np.ndarray, propensity: np.ndarray | None = None, folds: int = 3, seed: int = 0
) -> Nuisance:
    """Out-of-fold outcome models (LightGBM per arm) and propensities (LightGBM, unless known and
    given: P(arm 1) for one arm, or rows x arms)."""
    from sklearn.model_selection import StratifiedKFold

    n, arms = len(y), arm_count(t)
    outcome, e = np.zeros((n, arms)), np.zeros((n, arms))
    strata = t * 2 + (y > np.median(y)).astype(int)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, strata):
        for arm in range(arms):
            rows = train[t[train] == arm]
            outcome[test, arm] = nuisance_lgbm(False, seed).fit(X[rows], y[rows]).predict(X[test])
        if propensity is None:
            e[test] = nuisance_lgbm(True, seed).fit(X[train], t[train]).predict_proba(X[test])
    if propensity is not None:
        known = np.asarray(propensity, dtype=np.float64)
        e = np.column_stack([1.0 - known, known]) if known.ndim == 1 else known
    return Nuisance(outcome=outcome, arm_propensity=e)


def dr_pseudo_outcomes(y: np.ndarray, t: np.ndarray, nuisance: Nuisance, clip: float = 0.01) -> np.ndarray:
    """AIPW pseudo-outcomes of the one intervention; their mean over a segment estimates its average effect."""
    e = np.clip(nuisance.propensity, clip, 1 - clip)
    return _aipw(y, t, nuisance.outcome, np.column_stack([1 - e, e]))[:, 0]


def dr_arm_pseudo_outcomes(y: np.ndarray, t: np.ndarray, nuisance: Nuisance, clip: float = 0.01) -> np.ndarray:
    """AIPW pseudo-outcomes of every intervention arm against none (rows x arms 1 .. K-1); one arm's
    are `dr_pseudo_outcomes` as a column."""
    if nuisance.outcome.shape[1] == 2:
        return dr_pseudo_outcomes(y, t, nuisance, clip).reshape(-1, 1)
    return _aipw(y, t, nuisance.outcome, np.clip(nuisance.arm_propensity, clip, 1 - clip))


def _aipw(y: np.ndarray, t: np.ndarray, mu: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Arm k's pseudo-outcome `mu_k - mu_0 + 1[T=k] (Y - mu_k) / e_k - 1[T=0] (Y - mu_0) / e_0`, k = 1 .. K-1,
    with clipped propensities `e`."""
    control = (t == 0) * (y - mu[:, 0]) / e[:, 0]
    arms = [mu[:, k] - mu[:, 0] + (t == k) * (y - mu[:, k]) / e[:, k] - control for k in range(1, mu.shape[1])]
    return np.column_stack(arms)


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
    """Rows whose propensity is outside [low, high] (rows x arms: some arm's); logs a warning when there are any."""
    propensity = np.asarray(propensity, dtype=np.float64)
    least, most = (propensity, propensity) if propensity.ndim == 1 else (propensity.min(1), propensity.max(1))
    below, above = int(np.sum(least < low)), int(np.sum(most > high))
    report = OverlapReport(low, high, below, above, len(propensity), (least >= low) & (most <= high))
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


def arm_policy_values(
    predicted: np.ndarray,
    true_effect: np.ndarray,
    value_per_effect: np.ndarray | float,
    costs: dict[str, float],
    to_reported_currency: np.ndarray | float = 1.0,
) -> dict[str, object]:
    """Several arms (columns of `predicted` / `true_effect`, in the order of `costs`): mean profit change
    per application of the model's policy (per row, the arm whose predicted effect is worth most net of
    its cost, or none), of every single arm given to everyone, and of the oracle (the truly best option
    per row); the model's and the best single arm's shares of the oracle's value."""
    arms = list(costs)
    value = np.asarray(value_per_effect, dtype=np.float64)
    value = value.reshape(-1, 1) if value.ndim == 1 else value
    rate = np.asarray(to_reported_currency, dtype=np.float64)
    rate = rate.reshape(-1, 1) if rate.ndim == 1 else rate
    cost = np.array([costs[arm] for arm in arms])
    true_benefit = intervention_benefit(true_effect, value, cost) * rate  # rows x arms
    options = np.column_stack([np.zeros(len(true_benefit)), intervention_benefit(predicted, value, cost)])
    choice = np.argmax(options, axis=1)  # 0 = none; ties go to none, then the earlier arm
    gained = np.column_stack([np.zeros(len(true_benefit)), true_benefit])[np.arange(len(choice)), choice]
    oracle = float(np.mean(np.maximum(true_benefit.max(axis=1), 0.0)))
    single = {arm: float(np.mean(true_benefit[:, k])) for k, arm in enumerate(arms)}
    best_single = max(single, key=single.get)
    model = float(np.mean(gained))

    def share(value: float) -> float:
        return value / oracle if oracle > 0 else float("nan")

    return {
        "model": model,
        "oracle": oracle,
        "treat_none": 0.0,
        "treat_all_with": single,
        "best_single_arm": best_single if single[best_single] > 0 else NO_INTERVENTION,
        "best_single_arm_value": max(single[best_single], 0.0),
        "model_share_of_oracle": share(model),
        "best_single_arm_share_of_oracle": share(max(single[best_single], 0.0)),
        "model_option_shares": {
            option: float(np.mean(choice == k)) for k, option in enumerate([NO_INTERVENTION, *arms])
        },
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
