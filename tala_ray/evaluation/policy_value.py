"""The decision policy judged against the synthetic world's truth.

Every strategy decides with `tala_ray.policy.decide` (the code the service runs); its profit is
then valued with the TRUE default probabilities of the option it picked, so strategies are
compared on what they would really earn per application.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel

from tala_ray.policy.decision import NO_INTERVENTION, PolicyParams, decide
from tala_ray.policy.economics import expected_profit


class StrategyValue(BaseModel):
    """One strategy's outcome on the evaluation applications."""

    strategy: str
    profit_per_application: float
    approval_rate: float
    intervention_rate: float


def true_profit(
    lent: np.ndarray, treated: np.ndarray, truth: pd.DataFrame, term_days: np.ndarray, params: PolicyParams
) -> np.ndarray:
    """Expected profit of each loan under the true default probability of the option given."""
    pd_true = np.where(treated, truth["pd_treated"].to_numpy(), truth["pd_control"].to_numpy())
    cost = np.where(treated, params.intervention_cost, 0.0)
    return np.where(lent > 0, expected_profit(pd_true, lent, term_days, cost, params), 0.0)


def _value(
    name: str, lent: np.ndarray, treated: np.ndarray, truth: pd.DataFrame, term: np.ndarray, params: PolicyParams
) -> StrategyValue:
    return StrategyValue(
        strategy=name,
        profit_per_application=float(true_profit(lent, treated, truth, term, params).mean()),
        approval_rate=float((lent > 0).mean()),
        intervention_rate=float((treated & (lent > 0)).mean()),
    )


def _policy(name: str, pd_control, uplift, amount, term, truth, params) -> StrategyValue:
    decisions = decide(pd_control, uplift, amount, term, params)
    lent = np.array([d.limit for d in decisions])
    treated = np.array([d.intervention not in (None, NO_INTERVENTION) for d in decisions])
    return _value(name, lent, treated, truth, term, params)


def compare_strategies(
    predicted_pd: np.ndarray,
    predicted_uplift: np.ndarray,
    applications: pd.DataFrame,
    truth: pd.DataFrame,
    params: PolicyParams,
) -> list[StrategyValue]:
    """The policy against approve-all, the same policy without uplift, and the oracle.

    `applications` (amount, term_days) and `truth` (pd_control, pd_treated) are aligned row by row
    with the predictions.
    """
    amount = applications["amount"].to_numpy(float)
    term = applications["term_days"].to_numpy(float)
    true_uplift = (truth["pd_control"] - truth["pd_treated"]).to_numpy()
    no_uplift = np.zeros_like(predicted_uplift)
    return [
        _policy("policy (credit + uplift)", predicted_pd, predicted_uplift, amount, term, truth, params),
        _policy("policy without uplift", predicted_pd, no_uplift, amount, term, truth, params),
        _value("approve all, no intervention", amount, np.zeros(len(amount), bool), truth, term, params),
        _policy(
            "oracle (true PD and uplift)", truth["pd_control"].to_numpy(), true_uplift, amount, term, truth, params
        ),
    ]
