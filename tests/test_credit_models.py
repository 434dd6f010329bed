"""Credit estimators: they learn a known signal, explain it, and survive a round trip through files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tala_ray.models.credit import ESTIMATORS, estimator_from_files
from tala_ray.models.metrics import binary_metrics

FAST_PARAMS = {
    "logistic": {},
    "gbm": {"n_estimators": 60, "report_every": 20},
    "gbm_on_logistic": {"n_estimators": 60, "report_every": 20, "boost_from_logistic": True},
    "mlp": {"epochs": 4},
}
CASES = sorted(FAST_PARAMS)


def make(case: str):
    return ESTIMATORS[case.removesuffix("_on_logistic")](**FAST_PARAMS[case])


def toy_credit_frame(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Risk rises with `debt`, falls with `income`, is higher for country 'B'; gaps in both kinds of column."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "income": rng.normal(size=n),
            "debt": rng.normal(size=n),
            "country": rng.choice(["A", "B", "C"], size=n),
        }
    )
    logit = -1.5 + 1.2 * frame["debt"] - 0.8 * frame["income"] + 1.0 * (frame["country"] == "B")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame.loc[rng.random(n) < 0.1, "income"] = np.nan
    frame.loc[rng.random(n) < 0.05, "country"] = None
    return frame, y.to_numpy()


@pytest.mark.parametrize("case", CASES)
def test_estimator_learns_reports_and_round_trips(case):
    frame, y = toy_credit_frame()
    train, valid = frame.iloc[:2400], frame.iloc[2400:]
    steps = []
    model = make(case).fit(
        train, y[:2400], eval_set=(valid, y[2400:]), on_progress=lambda step, p: steps.append((step, p.shape))
    )
    assert model.fit(train, y[:2400]) is model
    proba = model.predict_proba(valid)
    assert proba.shape == (len(valid), 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert binary_metrics(y[2400:], proba[:, 1])["auc"] > 0.7
    assert steps and all(shape == (len(valid),) for _, shape in steps)
    rebuilt = estimator_from_files(model.to_files())
    np.testing.assert_allclose(rebuilt.predict_proba(valid), proba, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_contributions_point_the_right_way(case):
    frame, y = toy_credit_frame()
    model = make(case).fit(frame, y)
    probe = pd.DataFrame({"income": [0.0, 0.0], "debt": [-2.0, 2.0], "country": ["A", "A"]})
    contributions = model.contributions(probe)
    assert list(contributions.columns) == ["income", "debt", "country"]
    assert contributions.loc[1, "debt"] > contributions.loc[0, "debt"]
    assert model.predict_proba(probe)[1, 1] > model.predict_proba(probe)[0, 1]


def test_unseen_category_and_missing_values_are_scored():
    frame, y = toy_credit_frame()
    model = ESTIMATORS["logistic"]().fit(frame, y)
    odd = pd.DataFrame({"income": [np.nan], "debt": [0.0], "country": ["never-seen"]})
    p = model.predict_proba(odd)[:, 1]
    assert np.isfinite(p).all() and 0 < p[0] < 1


def test_hyperparameters_only_in_init():
    model = ESTIMATORS["gbm"](n_estimators=7, learning_rate=0.2)
    assert model.get_params()["n_estimators"] == 7
    assert not [name for name in vars(model) if name.endswith("_")]


def test_rare_levels_beyond_the_cap_and_dates_are_handled():
    from tala_ray.errors import UserError
    from tala_ray.models.preprocessing import Preprocessor

    frame = pd.DataFrame({"shop": [f"s{i % 80}" for i in range(800)] + ["s0"] * 200, "x": np.arange(1000.0)})
    preprocessor = Preprocessor.fit(frame, max_levels=10)
    assert len(preprocessor.categorical[0].levels) == 10 and "s0" in preprocessor.categorical[0].levels
    assert preprocessor.transform_dense(pd.DataFrame({"shop": ["s79"], "x": [1.0]}))[0, 1:].sum() == 0
    with pytest.raises(UserError, match="'when' is a date/time"):
        Preprocessor.fit(pd.DataFrame({"when": pd.to_datetime(["2024-01-01", "2024-02-01"]), "x": [1.0, 2.0]}))
