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
    from tala_ray.core.errors import UserError
    from tala_ray.models.preprocessing import Preprocessor

    frame = pd.DataFrame({"shop": [f"s{i % 80}" for i in range(800)] + ["s0"] * 200, "x": np.arange(1000.0)})
    preprocessor = Preprocessor.fit(frame, max_levels=10)
    assert len(preprocessor.categorical[0].levels) == 10 and "s0" in preprocessor.categorical[0].levels
    assert preprocessor.transform_dense(pd.DataFrame({"shop": ["s79"], "x": [1.0]}))[0, 1:].sum() == 0
    with pytest.raises(UserError, match="'when' is a date/time"):
        Preprocessor.fit(pd.DataFrame({"when": pd.to_datetime(["2024-01-01", "2024-02-01"]), "x": [1.0, 2.0]}))


# Serving shortcuts against the plain computation: the values must not change at all.


def reference_dense(preprocessor, frame: pd.DataFrame) -> np.ndarray:
    """`transform_dense` written plainly, column by column with pandas (the oracle for the fast path)."""
    blocks = []
    for column in preprocessor.numeric:
        values = pd.to_numeric(frame[column.name], errors="coerce").astype("float64")
        blocks.append(((values.fillna(column.median) - column.mean) / column.std).to_numpy())
        if column.had_missing:
            blocks.append(values.isna().to_numpy(dtype=np.float64))
    for column in preprocessor.categorical:
        levels = frame[column.name].map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
        blocks.extend((levels == level).to_numpy(dtype=np.float64) for level in column.levels)
    return np.column_stack(blocks).astype(np.float32)


def reference_coded(preprocessor, frame: pd.DataFrame) -> pd.DataFrame:
    """`transform_coded` written plainly: numerics as numbers, categoricals as their level's position."""
    out = {c.name: pd.to_numeric(frame[c.name], errors="coerce").astype("float64") for c in preprocessor.numeric}
    for column in preprocessor.categorical:
        codes = {level: float(i) for i, level in enumerate(column.levels)}
        out[column.name] = frame[column.name].map(
            lambda v, codes=codes: codes.get(str(v), np.nan) if isinstance(v, str) else np.nan
        )
    return pd.DataFrame(out, index=frame.index)


def reference_scores(model, frame: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Default probability and per-feature contributions through the libraries' plain calls, summed
    per feature by a pandas group sum."""
    import torch

    dense = reference_dense(model.preprocessor_, frame)
    sources = [source for _, source in model.preprocessor_.dense_columns()]
    if model.family == "logistic":
        logit, columns = dense.astype(np.float64) @ model.coef_ + model.intercept_, dense * model.coef_
    elif model.family == "mlp":
        x = torch.from_numpy(dense).requires_grad_(True)
        out = model.network_(x)
        out.sum().backward()
        logit, columns = out.detach().squeeze(1).double().numpy(), (x.grad * x).detach().double().numpy()
    else:
        coded = reference_coded(model.preprocessor_, frame)
        logit = model.booster_.predict(coded, raw_score=True)
        columns = model.booster_.predict(coded, pred_contrib=True)[:, : coded.shape[1]]
        init = model.init_logistic_
        if init is not None:
            logit = logit + (dense.astype(np.float64) @ init.coef_ + init.intercept_)
            columns = np.hstack([columns, dense * init.coef_])
        sources = list(coded.columns) + (sources if init is not None else [])
    names = model.preprocessor_.feature_names
    summed = pd.DataFrame(columns).T.groupby(sources, sort=False).sum().T.reindex(columns=names, fill_value=0.0)
    return 1.0 / (1.0 + np.exp(-logit)), summed.set_axis(frame.index)


def awkward_frame(n: int = 200, seed: int = 5) -> pd.DataFrame:
    """Toy features in another column order with an extra column, integers, numbers given as text,
    gaps, an unseen level and a non-default index."""
    frame, _ = toy_credit_frame(n, seed)
    frame["income"] = frame["income"].map(lambda v: None if np.isnan(v) else repr(v)).astype(object)
    frame["debt"] = (frame["debt"] * 3).round().astype("int64")
    frame.loc[frame.index[::17], "country"] = "never-seen"
    frame["unused"] = "x"
    return frame[["unused", "country", "debt", "income"]].set_axis(np.arange(1000, 1000 + n))


@pytest.fixture(scope="module")
def fitted_models():
    """Each family fitted on the toy data, then rebuilt from its files (as the service loads it)."""
    frame, y = toy_credit_frame()
    return {case: estimator_from_files(make(case).fit(frame, y).to_files()) for case in CASES}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("rows", [slice(0, 1), slice(3, 19), slice(0, 100)])
def test_predictions_and_contributions_equal_the_plain_computation(fitted_models, case, rows):
    from tala_ray.models.predictors import CreditPredictor

    model, frame = fitted_models[case], awkward_frame().iloc[rows]
    expected_p, expected_c = reference_scores(model, frame)
    predictor = CreditPredictor("pd", "1", None, ["income", "debt", "country"], model)
    p, contributions = predictor.score(frame)
    for probabilities in (p, predictor.predict_proba(frame), model.predict_proba(frame)[:, 1]):
        np.testing.assert_array_equal(probabilities, expected_p)
    for frame_out in (contributions, predictor.contributions(frame), model.contributions(frame)):
        pd.testing.assert_frame_equal(frame_out, expected_c, check_exact=True)
    np.testing.assert_array_equal(
        model.preprocessor_.transform_dense(frame), reference_dense(model.preprocessor_, frame)
    )
    pd.testing.assert_frame_equal(
        model.preprocessor_.transform_coded(frame), reference_coded(model.preprocessor_, frame), check_exact=True
    )


def test_score_refuses_a_frame_without_a_model_feature(fitted_models):
    from tala_ray.core.errors import UserError
    from tala_ray.models.predictors import CreditPredictor

    predictor = CreditPredictor("pd", "1", None, ["income", "debt", "country"], fitted_models["logistic"])
    with pytest.raises(UserError, match=r"needs columns \['debt'\]"):
        predictor.score(awkward_frame().drop(columns="debt"))


def test_group_sums_add_exactly_as_pandas_does():
    from tala_ray.models.credit import _group_sum_plan

    rng = np.random.default_rng(0)
    for _ in range(100):
        n, k, g = rng.integers(1, 20), rng.integers(1, 40), rng.integers(1, 8)
        sources = tuple(f"g{x}" for x in rng.integers(0, g, k))
        values = rng.normal(size=(n, k)) * 10.0 ** rng.integers(-8, 9, size=(n, k))
        values[rng.random((n, k)) < 0.1] = np.nan
        values[rng.random((n, k)) < 0.05] = 0.0
        names = tuple(f"g{x}" for x in range(g))
        expected = (
            pd.DataFrame(values)
            .T.groupby(list(sources), sort=False)
            .sum()
            .T.reindex(columns=list(names), fill_value=0.0)
        )
        plan = _group_sum_plan(names, sources)
        assert list(plan.names) == list(names)
        np.testing.assert_array_equal(plan(values), expected.to_numpy())
