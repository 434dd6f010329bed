"""Uplift estimators on a simulated world: they learn the planted effect; files round-trip safely."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tala_ray.core.errors import UserError
from tala_ray.data.world import simulate_chunk
from tala_ray.models import uplift_metrics as um
from tala_ray.models.predictors import load_predictor
from tala_ray.models.uplift import UPLIFT_ESTIMATORS, estimator_from_files

FAST = {"nuisance_n_estimators": 80, "cv": 2}
MODIFIERS = ["bill_count_90d", "betting_installs", "inflow_payday_concentration", "country"]
FAMILY_PARAMS = {"linear_dml": {"effect_modifiers": MODIFIERS}}


@pytest.fixture(scope="module")
def experiment() -> dict[str, object]:
    """The experiment cohort of a 10,000-applicant simulated world: features, repayment, treatment, truth."""
    from tala_ray.features.definitions import compute_features

    tables = {
        name: table.to_pandas() for name, table in simulate_chunk(seed=3, chunk_index=0, first_id=0, n=10_000).items()
    }
    features = compute_features(tables["applications"], tables["applicants"], tables["events"], tables["loans"])
    keep = (tables["applications"]["cohort"] == "experiment").to_numpy()
    return {
        "X": features[keep].drop(columns="application_id").reset_index(drop=True),
        "y": 1 - tables["applications"]["defaulted"].to_numpy()[keep],
        "t": tables["applications"]["treatment"].to_numpy()[keep].astype(int),
        "tau": tables["truth"]["true_uplift"].to_numpy()[keep],
    }


@pytest.mark.parametrize("family", sorted(UPLIFT_ESTIMATORS))
def test_every_family_fits_and_ranks_better_than_chance(experiment, family):
    X, y, t, tau = experiment["X"], experiment["y"], experiment["t"], experiment["tau"]
    half = len(y) // 2
    estimator = UPLIFT_ESTIMATORS[family](**FAMILY_PARAMS.get(family, {}), **FAST, seed=0).fit(
        y[:half], t[:half], X=X.iloc[:half]
    )
    effect = estimator.effect(X.iloc[half:])
    assert effect.shape == (len(y) - half,) and np.isfinite(effect).all()
    assert um.qini_coefficient(effect, tau[half:]) > 0.2 * um.qini_coefficient(tau[half:], tau[half:])
    if estimator.has_intervals:
        lower, upper = estimator.effect_interval(X.iloc[half:])
        assert (lower <= effect + 1e-12).all() and (effect <= upper + 1e-12).all()
    else:
        with pytest.raises(UserError, match="intervals"):
            estimator.effect_interval(X.iloc[half:])


def test_files_round_trip_and_tampered_files_are_refused(experiment, tmp_path):
    from tala_ray.core.registry import ArtifactIntegrityError, ArtifactMetadata, Registry

    X, y, t = experiment["X"], experiment["y"], experiment["t"]
    estimator = UPLIFT_ESTIMATORS["x_learner"](**FAST, seed=0).fit(y, t, X=X)
    files = estimator.to_files()
    assert np.array_equal(estimator_from_files(files).effect(X), estimator.effect(X))

    registry = Registry(str(tmp_path))
    metadata = ArtifactMetadata(
        kind="uplift", family="x_learner", feature_set_version="fs-test", feature_names=list(X.columns)
    )
    registry.register("uplift", files, metadata)
    registry.set_alias("uplift", "champion", "1")
    predictor = load_predictor(str(tmp_path), "uplift", expected_feature_set_version="fs-test", kind="uplift")
    shuffled = X[list(reversed(X.columns))]  # columns are matched by name
    assert np.allclose(predictor.effect(shuffled), estimator.effect(X))
    assert predictor.version == "1" and predictor.feature_set_version == "fs-test"
    with pytest.raises(UserError, match="lacks"):
        predictor.effect(X.drop(columns=["country"]))

    (tmp_path / "uplift" / "1" / "estimator.pkl").write_bytes(b"not the pickle that was registered")
    with pytest.raises(ArtifactIntegrityError):
        load_predictor(str(tmp_path), "uplift", kind="uplift")


def test_a_credit_model_is_not_loaded_as_uplift(tmp_path):
    from tala_ray.core.registry import ArtifactMetadata, Registry

    Registry(str(tmp_path)).register("pd", {"x.json": b"{}"}, ArtifactMetadata(kind="credit", family="logistic"))
    with pytest.raises(UserError, match="not an uplift model"):
        load_predictor(str(tmp_path), "pd", ref="1", kind="uplift")


def test_linear_dml_coefficients_name_the_columns(experiment):
    X, y, t = experiment["X"], experiment["y"], experiment["t"]
    estimator = UPLIFT_ESTIMATORS["linear_dml"](effect_modifiers=MODIFIERS, **FAST, seed=0).fit(y, t, X=X)
    coefficients = estimator.coefficients()
    assert coefficients.index[0] == "intercept" and "betting_installs" in coefficients.index
    assert coefficients["betting_installs"] < 0  # heavy bettors are harmed by the intervention
    assert len(coefficients) == 1 + 3 + 3  # intercept, three numerics, four countries less the reference
    assert isinstance(coefficients, pd.Series) and np.isfinite(coefficients).all()


def test_one_arm_only_is_a_user_error(experiment):
    X, y = experiment["X"], experiment["y"]
    with pytest.raises(UserError, match="both arms"):
        UPLIFT_ESTIMATORS["t_learner"]().fit(y, np.ones(len(y)), X=X)


def test_metalearners_refuse_controls_instead_of_ignoring_them(experiment):
    X, y, t = experiment["X"], experiment["y"], experiment["t"]
    with pytest.raises(UserError, match="W: x_learner takes no controls"):
        UPLIFT_ESTIMATORS["x_learner"]().fit(y, t, X=X[["country"]], W=X[["betting_installs"]])


@pytest.fixture(scope="module")
def fitted_families(experiment) -> dict[str, object]:
    """Each family fitted on 2,000 rows, then rebuilt from its files (as the service loads it)."""
    X, y, t = experiment["X"].iloc[:2000], experiment["y"][:2000], experiment["t"][:2000]
    fitted = {}
    for family, cls in UPLIFT_ESTIMATORS.items():
        estimator = cls(**FAMILY_PARAMS.get(family, {}), nuisance_n_estimators=40, cv=2, seed=0).fit(y, t, X=X)
        fitted[family] = estimator_from_files(estimator.to_files())
    return fitted


@pytest.mark.parametrize("family", sorted(UPLIFT_ESTIMATORS))
def test_effect_equals_econmls_own_effect_on_the_plain_preprocessing(experiment, fitted_families, family):
    from test_credit_models import reference_dense

    from tala_ray.models.predictors import UpliftPredictor

    estimator = fitted_families[family]
    names = estimator.preprocessor_.feature_names
    predictor = UpliftPredictor("uplift", "1", None, names, estimator)
    assert estimator.treatment_step_ is not None  # the shortcut past EconML's treatment expansion is taken
    assert getattr(estimator, "lightgbm_only_", family in ("x_learner", "t_learner")) == (
        family in ("x_learner", "t_learner")
    )
    for rows in (slice(2000, 2001), slice(2100, 2116), slice(2200, 2300)):
        X = experiment["X"].iloc[rows]
        dense = reference_dense(estimator.preprocessor_, X).astype(np.float64)
        if family == "linear_dml":
            dense = dense[:, estimator._kept_columns()]
        expected = np.asarray(estimator.estimator_.effect(dense), dtype=np.float64).reshape(-1)
        np.testing.assert_array_equal(estimator.effect(X), expected)
        np.testing.assert_array_equal(predictor.effect(X[list(reversed(X.columns))]), expected)
