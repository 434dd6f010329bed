"""The offline judge of the decision policy: strategies valued with the true default probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tala_ray.evaluation.policy_value import compare_strategies, true_profit
from tala_ray.policy.decision import PolicyParams

PARAMS = PolicyParams()


def _world(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    pd_control = rng.uniform(0.01, 0.5, n)
    uplift = rng.normal(0.02, 0.05, n)
    truth = pd.DataFrame({"pd_control": pd_control, "pd_treated": np.clip(pd_control - uplift, 0, 1)})
    applications = pd.DataFrame({"amount": rng.uniform(500, 8000, n), "term_days": rng.choice([14, 30, 60], n)})
    return applications, truth


def test_true_profit_matches_the_economics_by_hand():
    truth = pd.DataFrame({"pd_control": [0.1, 0.1, 0.3], "pd_treated": [0.05, 0.05, 0.2]})
    lent = np.array([1000.0, 1000.0, 0.0])
    treated = np.array([False, True, True])
    profit = true_profit(lent, treated, truth, np.array([30.0, 30.0, 30.0]), PARAMS)
    assert profit[0] == pytest.approx(0.9 * 0.12 * 1000 - 0.1 * 0.95 * 1000)
    assert profit[1] == pytest.approx(0.95 * 0.12 * 1000 - 0.05 * 0.95 * 1000 - PARAMS.intervention_cost)
    assert profit[2] == 0.0, "nothing lent, nothing earned or spent"


def test_a_policy_that_knows_the_truth_earns_what_the_oracle_earns():
    applications, truth = _world()
    uplift = (truth["pd_control"] - truth["pd_treated"]).to_numpy()
    values = {
        v.strategy: v for v in compare_strategies(truth["pd_control"].to_numpy(), uplift, applications, truth, PARAMS)
    }
    assert values["policy (credit + uplift)"].profit_per_application == pytest.approx(
        values["oracle (true PD and uplift)"].profit_per_application
    )
    assert (
        values["oracle (true PD and uplift)"].profit_per_application
        >= values["policy without uplift"].profit_per_application
    )
    assert values["approve all, no intervention"].approval_rate == 1.0
    assert values["policy without uplift"].intervention_rate == 0.0


def test_noisy_predictions_earn_less_than_the_oracle():
    applications, truth = _world(2000, seed=1)
    rng = np.random.default_rng(2)
    noisy_pd = np.clip(truth["pd_control"].to_numpy() + rng.normal(0, 0.15, len(truth)), 0, 1)
    noisy_uplift = rng.normal(0, 0.05, len(truth))
    values = {
        v.strategy: v.profit_per_application
        for v in compare_strategies(noisy_pd, noisy_uplift, applications, truth, PARAMS)
    }
    assert values["policy (credit + uplift)"] < values["oracle (true PD and uplift)"]
