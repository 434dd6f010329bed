"""Uplift metrics on data with planted effects: intervals cover, Qini ranks, overlap trims."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from tala_ray.models import uplift_metrics as um


def _randomized(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """X, outcome, treatment (p = 0.5) and the planted individual effect tau = 0.1 + 0.2 x0."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    tau = 0.1 + 0.2 * X[:, 0]
    t = (rng.random(n) < 0.5).astype(int)
    y = 0.5 * X[:, 1] + t * tau + rng.normal(0, 0.5, n)
    return X, y, t, tau


def test_qini_of_the_oracle_beats_any_ranking_and_random_is_near_zero():
    rng = np.random.default_rng(0)
    tau = rng.normal(0.02, 0.05, 5_000)
    oracle = um.qini_coefficient(tau, tau)
    noisy = um.qini_coefficient(tau + rng.normal(0, 0.05, tau.size), tau)
    random = um.qini_coefficient(rng.random(tau.size), tau)
    assert oracle > noisy > random
    assert abs(random) < 0.1 * oracle
    fractions, curve = um.qini_curve(tau, tau)
    assert curve[0] == 0 and abs(curve[-1]) < 1e-12 and fractions[-1] == 1.0
    assert um.auuc(tau, tau) == pytest.approx(oracle + tau.mean() / 2, rel=1e-6)


def test_pehe_and_policy_values():
    true = np.array([0.1, -0.1, 0.02, 0.3])
    assert um.pehe(true, true) == 0.0
    assert um.pehe(true + 0.1, true) == pytest.approx(0.1)
    values = um.policy_values(predicted=true, true_effect=true, value_per_effect=10.0, cost=0.5)
    # benefit = 10 tau - 0.5 = [0.5, -1.5, -0.3, 2.5]: the oracle intervenes on rows 0 and 3.
    assert values["oracle"] == pytest.approx(3.0 / 4)
    assert values["model"] == values["oracle"]
    assert values["treat_all"] == pytest.approx(1.2 / 4)
    assert values["treat_none"] == 0.0
    assert values["model_treated_share"] == 0.5


def test_naive_and_dr_average_effects_cover_the_planted_effect_in_an_experiment():
    X, y, t, tau = _randomized(4_000, seed=1)
    assert um.naive_difference(y, t).covers(tau.mean())
    nuisance = um.cross_fitted_nuisance(X, y, t, seed=0)
    dr = um.mean_with_ci(um.dr_pseudo_outcomes(y, t, nuisance))
    assert dr.covers(tau.mean())
    assert dr.std_error < um.naive_difference(y, t).std_error  # adjustment for X[:, 1] sharpens it


def test_dr_adjusts_for_confounding_that_fools_the_naive_difference():
    rng = np.random.default_rng(2)
    n = 6_000
    X = rng.normal(size=(n, 2))
    propensity = 1 / (1 + np.exp(-1.5 * X[:, 0]))
    t = (rng.random(n) < propensity).astype(int)
    y = 1.0 * X[:, 0] + 0.2 * t + rng.normal(0, 0.5, n)
    naive = um.naive_difference(y, t)
    dr = um.mean_with_ci(um.dr_pseudo_outcomes(y, t, um.cross_fitted_nuisance(X, y, t, seed=0)))
    assert not naive.covers(0.2)
    assert abs(dr.estimate - 0.2) < abs(naive.estimate - 0.2) / 5


def test_overlap_check_warns_and_trims(caplog):
    propensity = np.array([0.01, 0.3, 0.5, 0.97, 0.99, 0.6])
    with caplog.at_level(logging.WARNING):
        report = um.overlap_check(propensity, low=0.05, high=0.95)
    assert (report.below, report.above) == (1, 2)
    assert report.keep.tolist() == [False, True, True, False, False, True]
    assert report.trimmed_share == pytest.approx(0.5)
    assert "overlap" in caplog.text
    assert um.overlap_check(np.full(4, 0.5)).trimmed_share == 0.0


def test_segment_effects_and_deciles():
    X, y, t, tau = _randomized(3_000, seed=3)
    pseudo = um.dr_pseudo_outcomes(y, t, um.cross_fitted_nuisance(X, y, t, seed=0))
    segments = pd.Series(np.where(X[:, 0] > 0, "high", "low"))
    table = um.segment_effects(segments, pseudo, predicted=tau, true_effect=tau).set_index("segment")
    assert table.loc["high", "true"] > table.loc["low", "true"]
    assert table.loc["high", "dr_estimate"] > table.loc["low", "dr_estimate"]
    assert (table["dr_lower"] <= table["dr_upper"]).all() and table["n"].sum() == 3_000
    decile = um.deciles(X[:, 0])
    assert sorted(decile.unique()) == list(range(1, 11))
    assert X[decile.to_numpy() == 10, 0].min() >= X[decile.to_numpy() == 9, 0].max()
