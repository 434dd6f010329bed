"""The uplift model and the intervention policy judged on live traffic: the exploration bucket.

In the bucket the intervention is given at random with a logged propensity e, so for each loan
whose outcome is known the doubly robust score
`G = (m1 - m0) + T (Y - m1) / e - (1 - T) (Y - m0) / (1 - e)` is an unbiased estimate of the
intervention's effect on it (Y: repaid; m: the models' own predictions, which under randomization
only shrink the variance). RATE (Yadlowsky et al.): rank the bucket by the uplift model's score; the
targeting operator curve TOC(q) is the mean G of the top q minus the mean G of all; AUTOC weighs
every q alike, Qini weighs q by q. The policy's value against no intervention is the same score on
the profit (USD), where the policy chose the intervention (before exploration overrode it), per loan
of the bucket. Intervals: percentile bootstrap over the bucket's loans.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from tala_ray.monitoring.config import UpliftRule
from tala_ray.monitoring.outcomes import is_labelled
from tala_ray.policy.economics import Economics, expected_profit

Weighting = Literal["qini", "autoc"]
CURVE_POINTS = 20


class LiveUplift(BaseModel):
    """The bucket's figures: RATE and the policy's gain over no intervention, with intervals."""

    loans: int
    treated_share: float
    weighting: Weighting
    rate: float
    rate_low: float
    rate_high: float
    policy_gain_usd: float
    gain_low: float
    gain_high: float
    curve_q: list[float]
    curve_toc: list[float]


def _rate_of_sorted(effects: np.ndarray, weighting: Weighting) -> np.ndarray:
    """RATE of effects already ranked by score (last axis)."""
    n = effects.shape[-1]
    top_means = np.cumsum(effects, axis=-1) / np.arange(1, n + 1)
    toc = top_means - effects.mean(axis=-1, keepdims=True)
    weights = np.arange(1, n + 1) / n if weighting == "qini" else np.ones(n)
    return (toc * weights).mean(axis=-1)


def rate(score: np.ndarray, effect: np.ndarray, weighting: Weighting) -> float:
    """Rank-weighted average treatment effect of ranking by `score` when the effects are `effect`."""
    order = np.argsort(-np.asarray(score, float), kind="stable")
    return float(_rate_of_sorted(np.asarray(effect, float)[order], weighting))


def toc_curve(score: np.ndarray, effect: np.ndarray, points: int = CURVE_POINTS) -> tuple[list[float], list[float]]:
    """The targeting operator curve at `points` shares q of the ranking."""
    ranked = np.asarray(effect, float)[np.argsort(-np.asarray(score, float), kind="stable")]
    n = len(ranked)
    q = np.linspace(1 / points, 1, points)
    top = np.maximum((q * n).astype(int), 1)
    toc = np.cumsum(ranked)[top - 1] / top - ranked.mean()
    return q.round(4).tolist(), toc.tolist()


def _value_usd(bucket: pd.DataFrame, pd_values: np.ndarray, treated: np.ndarray, economics: Economics) -> np.ndarray:
    cost = economics.intervention_cost * treated
    return (
        expected_profit(pd_values, bucket["limit"], bucket["term_days"], cost, economics).to_numpy()
        / bucket["fx"].to_numpy()
    )


def _doubly_robust(y: np.ndarray, m1: np.ndarray, m0: np.ndarray, t: np.ndarray, e: np.ndarray) -> np.ndarray:
    return (m1 - m0) + t * (y - m1) / e - (1 - t) * (y - m0) / (1 - e)


def bucket_of(joined: pd.DataFrame) -> pd.DataFrame:
    """The explored loans whose outcome is final and known, randomized (0 < propensity < 1)."""
    randomized = joined["explored"] & joined["propensity"].between(0, 1, inclusive="neither")
    return joined[randomized & is_labelled(joined)].reset_index(drop=True)


def effect_scores(bucket: pd.DataFrame) -> np.ndarray:
    """Each loan's doubly robust score of the intervention's effect on repayment."""
    pd_control = bucket["default_probability"].to_numpy()
    pd_treated = np.clip(pd_control - bucket["uplift"].to_numpy(), 0.0, 1.0)
    t, e = bucket["treated"].to_numpy(dtype=float), bucket["propensity"].to_numpy()
    return _doubly_robust(1 - bucket["defaulted"].to_numpy(), 1 - pd_treated, 1 - pd_control, t, e)


def profit_scores(bucket: pd.DataFrame, economics: Economics) -> np.ndarray:
    """Each loan's doubly robust score of the intervention's effect on profit (USD)."""
    pd_control = bucket["default_probability"].to_numpy()
    pd_treated = np.clip(pd_control - bucket["uplift"].to_numpy(), 0.0, 1.0)
    t, e = bucket["treated"].to_numpy(dtype=float), bucket["propensity"].to_numpy()
    realized = _value_usd(bucket, bucket["defaulted"].to_numpy(), t, economics)
    m1 = _value_usd(bucket, pd_treated, np.ones(len(bucket)), economics)
    m0 = _value_usd(bucket, pd_control, np.zeros(len(bucket)), economics)
    return _doubly_robust(realized, m1, m0, t, e)


def true_profit_effect(
    bucket: pd.DataFrame, pd_control: np.ndarray, pd_treated: np.ndarray, economics: Economics
) -> np.ndarray:
    """The intervention's true effect on each loan's expected profit (USD), from true PDs."""
    n = len(bucket)
    return _value_usd(bucket, pd_treated, np.ones(n), economics) - _value_usd(
        bucket, pd_control, np.zeros(n), economics
    )


def policy_gain(bucket: pd.DataFrame, profit_effect: np.ndarray) -> float:
    """The policy's gain over no intervention per loan: the profit effect where it intervenes."""
    return float(np.mean(bucket["policy_treated"].to_numpy(dtype=float) * profit_effect))


def live_uplift(joined: pd.DataFrame, rule: UpliftRule, economics: Economics) -> LiveUplift | None:
    """The bucket's figures, or None with fewer than `rule.min_rows` loans in it."""
    bucket = bucket_of(joined)
    if len(bucket) < rule.min_rows:
        return None
    score = bucket["uplift"].to_numpy()
    effects, profits = effect_scores(bucket), profit_scores(bucket, economics)
    policy = bucket["policy_treated"].to_numpy(dtype=float)
    rng = np.random.default_rng(rule.seed)
    draws = rng.integers(0, len(bucket), (rule.bootstrap, len(bucket)))
    ranked = np.take_along_axis(effects[draws], np.argsort(-score[draws], axis=1, kind="stable"), axis=1)
    rates = _rate_of_sorted(ranked, rule.weighting)
    gains = (policy[draws] * profits[draws]).mean(axis=1)
    tail = (1 - rule.confidence) / 2 * 100
    curve_q, curve_toc = toc_curve(score, effects)
    return LiveUplift(
        loans=len(bucket),
        treated_share=float(bucket["treated"].mean()),
        weighting=rule.weighting,
        rate=rate(score, effects, rule.weighting),
        rate_low=float(np.percentile(rates, tail)),
        rate_high=float(np.percentile(rates, 100 - tail)),
        policy_gain_usd=policy_gain(bucket, profits),
        gain_low=float(np.percentile(gains, tail)),
        gain_high=float(np.percentile(gains, 100 - tail)),
        curve_q=curve_q,
        curve_toc=curve_toc,
    )
