"""Realized performance per vintage (week of decision), on the loans whose outcome is final and known.

Per vintage (all countries, then each): the approval rate; the realized default rate with a Wilson
interval against the rate the model predicted for the same loans (the mean PD of the option served);
AUC (with Hanley and McNeil's standard error), KS and calibration error; and the realized profit per
application (a declined one earns 0) against the profit expected at decision time, both valued with the
ONE profit function
(`tala_ray.policy.economics.expected_profit`: a realized outcome is a PD of 0 or 1), in USD.
A default-rate alert needs the realized defaults further from the predicted rate than chance explains
(an exact binomial test at the mean predicted PD, conservative for loans of unequal PDs) at the family
level (`family_alpha` split over every vintage and country judged), so chance alone rarely raises one
(the normal or Wilson approximations understate the upper tail at a few dozen defaults); an
AUC alert needs the realized AUC below the estimate for the same loans by more than `max_auc_shortfall`
and by more than chance explains at the same level.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binom, norm
from sklearn.metrics import roc_auc_score

from tala_ray.models.metrics import expected_calibration_error, ks_statistic
from tala_ray.monitoring.config import RealizedRule
from tala_ray.monitoring.drift import ALL
from tala_ray.monitoring.estimated import Calibrator, expected_auc
from tala_ray.monitoring.outcomes import labelled
from tala_ray.policy.economics import Economics, expected_profit


def wilson_interval(defaults: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a binomial rate."""
    if n == 0:
        return float("nan"), float("nan")
    z = norm.ppf(0.5 + confidence / 2)
    rate = defaults / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def rate_p_value(defaults: int, n: int, predicted: float) -> float:
    """Two-sided exact binomial p-value of `defaults` in `n` loans at the predicted default rate."""
    if n == 0:
        return float("nan")
    tail = min(binom.cdf(defaults, n, predicted), binom.sf(defaults - 1, n, predicted))
    return float(min(1.0, 2 * tail))


def auc_standard_error(auc: float, defaults: int, repaid: int) -> float:
    """Hanley and McNeil's standard error of an AUC measured on `defaults` and `repaid` loans."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = auc * (1 - auc) + (defaults - 1) * (q1 - auc * auc) + (repaid - 1) * (q2 - auc * auc)
    return float(np.sqrt(max(variance, 0.0) / (defaults * repaid)))


def profits_usd(joined: pd.DataFrame, pd_values: np.ndarray | pd.Series, economics: Economics) -> np.ndarray:
    """Profit of each lent loan (0 when declined) at default probability `pd_values`, in USD."""
    cost = economics.intervention_cost * joined["treated"].to_numpy(dtype=float)
    profit = expected_profit(np.asarray(pd_values, float), joined["limit"], joined["term_days"], cost, economics)
    return np.where(joined["lent"], profit, 0.0) / joined["fx"].to_numpy()


def _two_classes(y: np.ndarray) -> bool:
    return len(y) > 1 and 0 < y.sum() < len(y)


def _vintage_row(group: pd.DataFrame, rule: RealizedRule, economics: Economics, calibrate: Calibrator) -> dict:
    loans = group[group["lent"]]
    known = labelled(loans)
    settled = pd.concat([group[~group["lent"]], known])  # applications whose result is known
    y = known["defaulted"].to_numpy(dtype=np.int64)
    score = known["pd_served"].to_numpy()
    low, high = wilson_interval(int(y.sum()), len(y), rule.confidence)
    both = _two_classes(y)
    auc = float(roc_auc_score(y, score)) if both else float("nan")
    return {
        "applications": len(group),
        "approval_rate": float(group["lent"].mean()),
        "loans": len(loans),
        "labelled": len(known),
        "matured_share": float(loans["matured"].mean()) if len(loans) else float("nan"),
        "default_rate": float(y.mean()) if len(y) else float("nan"),
        "ci_low": low,
        "ci_high": high,
        "predicted_rate": float(score.mean()) if len(y) else float("nan"),
        "rate_p_value": rate_p_value(int(y.sum()), len(y), float(score.mean())) if len(y) else float("nan"),
        "auc": auc,
        "auc_se": auc_standard_error(auc, int(y.sum()), int(len(y) - y.sum())) if both else float("nan"),
        "estimated_auc_same_loans": expected_auc(score, calibrate(score)) if len(y) else float("nan"),
        "ks": ks_statistic(y, score) if both else float("nan"),
        "calibration_error": expected_calibration_error(y, score) if len(y) else float("nan"),
        "realized_profit_per_application_usd": float(
            profits_usd(settled, settled["defaulted"].fillna(0), economics).mean()
        )
        if len(settled)
        else float("nan"),
        "expected_profit_per_application_usd": float(profits_usd(settled, settled["pd_served"], economics).mean())
        if len(settled)
        else float("nan"),
    }


def realized_by_vintage(
    joined: pd.DataFrame, rule: RealizedRule, economics: Economics, calibrate: Calibrator
) -> pd.DataFrame:
    """One row per (vintage, segment) with the realized figures, and whether it breaks the rule; the
    AUC is set against the estimate (from `calibrate`d PDs) for the same loans."""
    segments = [(ALL, joined)]
    if rule.by_country:
        segments += [(country, group) for country, group in joined.groupby("country", sort=True)]
    rows = []
    for segment, frame in segments:
        for vintage, group in frame.groupby("vintage", sort=True):
            rows.append({"vintage": vintage, "segment": segment, **_vintage_row(group, rule, economics, calibrate)})
    table = pd.DataFrame(rows)
    table["judged"] = table["labelled"] >= rule.min_loans
    tests = max(int(table["judged"].sum()), 1)
    alpha = rule.family_alpha / tests
    table["rate_alert"] = table["judged"] & (table["rate_p_value"] < alpha)
    shortfall = table["estimated_auc_same_loans"] - table["auc"]
    z = norm.ppf(1 - alpha)  # one-sided: the realized AUC falls short of the estimate
    table["auc_alert"] = table["judged"] & (shortfall > rule.max_auc_shortfall) & (shortfall > z * table["auc_se"])
    return table
