"""Several interventions: the world's arms and their truth, multi-treatment estimators, per-arm DR metrics,
the policy that picks the arm worth most net of its cost, judged against the oracle and the best single arm."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tala_ray.core.errors import UserError
from tala_ray.data.design import ONE_ARM, REMINDER, Design
from tala_ray.data.schema import INTERVENTION
from tala_ray.data.world import simulate_chunk
from tala_ray.evaluation.uplift_report import average_effects, evaluate_uplift, report_markdown, value_per_effect
from tala_ray.models import uplift_metrics as um
from tala_ray.models.training_data import TrainingFrame
from tala_ray.models.uplift import UPLIFT_ESTIMATORS, estimator_from_files
from tala_ray.models.uplift_validation import validation_scores
from tala_ray.policy.economics import Economics

ARMS = Design(arms=(REMINDER, INTERVENTION))
COSTS = {REMINDER: 0.2, INTERVENTION: 1.0}  # experiments/uplift_multiarm.yaml
FAST = {"nuisance_n_estimators": 60, "nuisance_num_leaves": 7, "cv": 2}


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    """The experiment cohort of a 15,000-applicant three-option world: features, outcomes, true effects."""
    from tala_ray.features.definitions import compute_features

    tables = {k: v.to_pandas() for k, v in simulate_chunk(7, 0, 0, 15_000, ARMS).items()}
    features = compute_features(tables["applications"], tables["applicants"], tables["events"], tables["loans"])
    exp = (tables["applications"]["cohort"] == "experiment").to_numpy()
    truth = tables["truth"]
    effects = np.column_stack([truth["pd_control"] - truth["pd_reminder"], truth["pd_control"] - truth["pd_treated"]])
    return {
        "tables": tables,
        "X": features[exp].drop(columns="application_id").reset_index(drop=True),
        "y": 1.0 - tables["applications"]["defaulted"].to_numpy()[exp],
        "t": tables["applications"]["treatment"].to_numpy()[exp].astype(np.int64),
        "tau": effects[exp],
    }


def test_the_default_design_is_the_one_arm_world_and_arms_change_only_treatment_and_outcomes():
    one_arm = simulate_chunk(9, 1, 500, 400)
    assert all(one_arm[k].equals(v) for k, v in simulate_chunk(9, 1, 500, 400, ONE_ARM).items())
    three = simulate_chunk(9, 1, 500, 400, ARMS)
    assert three["applicants"].equals(one_arm["applicants"])
    same = ["application_id", "application_time", "amount", "term_days", "cohort"]
    assert three["applications"].select(same).equals(one_arm["applications"].select(same))
    assert three["truth"].select(one_arm["truth"].column_names).equals(one_arm["truth"])  # the same potential PDs
    assert set(three["truth"].column_names) - set(one_arm["truth"].column_names) == {"pd_reminder"}


def test_arms_are_randomised_in_the_experiment_confounded_in_history_with_heterogeneous_effects(world):
    apps, truth = world["tables"]["applications"], world["tables"]["truth"]
    exp = apps["cohort"] == "experiment"
    shares = apps.loc[exp, "treatment"].value_counts(normalize=True).sort_index()
    assert shares.index.tolist() == [0, 1, 2] and np.allclose(shares, 1 / 3, atol=0.03)
    assert np.allclose(apps.loc[exp, "propensity"], 2 / 3)  # P(any intervention), as the one-arm world records
    risky = truth["pd_control"] > truth["pd_control"].median()
    treated = apps["treatment"] > 0
    assert treated[~exp & risky].mean() > treated[~exp & ~risky].mean() + 0.1  # the old policy: riskier -> treated
    tau = pd.DataFrame(world["tau"], columns=[REMINDER, INTERVENTION])
    assert (tau.std() > tau.mean().abs()).all()  # heterogeneous: spread larger than mean
    best = np.argmax(np.column_stack([np.zeros(len(tau)), tau.to_numpy()]), axis=1)
    assert set(np.bincount(best, minlength=3) / len(best) > 0.1) == {True}  # every option is someone's best
    rows = (apps["treatment"] == 1) & exp
    assert um.mean_with_ci(apps.loc[rows, "defaulted"].to_numpy()).covers(truth.loc[rows, "pd_reminder"].mean())


@pytest.mark.parametrize("family", sorted(UPLIFT_ESTIMATORS))
def test_every_family_fits_several_arms(world, family):
    X, y, t, tau = world["X"], world["y"], world["t"], world["tau"]
    half = 2 * len(y) // 3
    params = {"effect_modifiers": ["bill_count_90d", "betting_installs", "country"]} if family == "linear_dml" else {}
    model = UPLIFT_ESTIMATORS[family](**params, **FAST, seed=0).fit(y[:half], t[:half], X=X.iloc[:half])
    assert model.n_arms_ == 3
    effects = model.arm_effects(X.iloc[half:])
    assert effects.shape == (len(y) - half, 2) and np.isfinite(effects).all()
    np.testing.assert_array_equal(effects[:, 1], model.effect(X.iloc[half:], T1=2))
    for k in range(2):
        assert um.qini_coefficient(effects[:, k], tau[half:, k]) > 0.2 * um.qini_coefficient(
            tau[half:, k], tau[half:, k]
        )
    if model.has_intervals:
        lower, upper = model.effect_interval(X.iloc[half : half + 50], T1=2)
        assert (lower <= effects[:50, 1] + 1e-9).all() and (effects[:50, 1] <= upper + 1e-9).all()
    with pytest.raises(UserError, match="T1: arm 3 is not an intervention arm of this model"):
        model.effect(X.iloc[:5], T1=3)
    rebuilt = estimator_from_files(model.to_files())
    np.testing.assert_array_equal(rebuilt.arm_effects(X.iloc[half:]), effects)


def test_a_missing_arm_is_refused(world):
    X, y, t = world["X"], world["y"], world["t"]
    with pytest.raises(UserError, match="needs every arm code from 0 to 2"):
        UPLIFT_ESTIMATORS["t_learner"]().fit(y[t != 1], t[t != 1], X=X[t != 1])


def test_per_arm_pseudo_outcomes_recover_each_arms_planted_effect():
    rng = np.random.default_rng(4)
    n = 9_000
    X = rng.normal(size=(n, 2))
    t = rng.integers(0, 3, n)
    effect = np.array([0.0, 0.4, -0.3])
    y = X[:, 0] + effect[t] + 0.6 * (t == 1) * X[:, 1] + rng.normal(0, 1.0, n)
    pseudo = um.dr_arm_pseudo_outcomes(y, t, um.cross_fitted_nuisance(X, y, t, seed=0))
    assert pseudo.shape == (n, 2)
    # 99% intervals: both arms share the control rows' noise, so two 95% intervals miss together more often
    assert um.mean_with_ci(pseudo[:, 0], 0.01).covers(0.4) and um.mean_with_ci(pseudo[:, 1], 0.01).covers(-0.3)
    ranked = um.qini_coefficient(X[:, 1], pseudo[:, 0])  # arm 1's effect grows with X[:, 1]
    assert ranked > 0.1 and um.qini_coefficient(-X[:, 1], pseudo[:, 0]) < 0


def test_the_multi_arm_policy_value_by_hand():
    # rows: reminder pays, discount pays, neither, discount pays more than the reminder
    true = np.array([[0.1, 0.0], [0.0, 0.2], [-0.1, -0.1], [0.05, 0.3]])
    values = um.arm_policy_values(true, true, value_per_effect=10.0, costs={"a": 0.5, "b": 1.0})
    # net benefits: a = [0.5, -0.5, -1.5, 0.0]; b = [-1.0, 1.0, -2.0, 2.0]
    assert values["oracle"] == pytest.approx((0.5 + 1.0 + 0.0 + 2.0) / 4)
    assert values["model"] == values["oracle"] and values["model_share_of_oracle"] == pytest.approx(1.0)
    assert values["treat_all_with"] == pytest.approx({"a": -1.5 / 4, "b": 0.0})
    assert values["best_single_arm"] == "none" and values["best_single_arm_share_of_oracle"] == 0.0
    assert values["model_option_shares"] == {"none": 0.25, "a": 0.25, "b": 0.5}
    wrong = um.arm_policy_values(true[:, ::-1], true, value_per_effect=10.0, costs={"a": 0.5, "b": 1.0})
    assert wrong["model"] < values["model"]


def test_the_report_has_every_arm_and_the_policy_against_the_oracle_and_the_best_single_arm(world):
    X, y, t, tau = world["X"], world["y"], world["t"], world["tau"]
    frame = TrainingFrame(features=X, target=(1 - y).astype(np.int64), ids=np.arange(len(y)), treatment=t)
    effect = tau + np.random.default_rng(0).normal(0, 0.02, tau.shape)  # a good model: the truth plus noise
    evaluation = evaluate_uplift(effect, frame, Economics(), seed=0, truth=tau, costs=COSTS)
    figures = evaluation.figures
    assert set(figures["arms"]) == set(COSTS) and figures["treated_share"] == pytest.approx(np.mean(t > 0))
    for k, arm in enumerate(COSTS):
        assert (
            figures["arms"][arm]["ate_adjusted"]["lower"]
            <= tau[:, k].mean()
            <= figures["arms"][arm]["ate_adjusted"]["upper"]
        )
        assert figures["arms"][arm]["qini_share_of_oracle"] > 0.8
    policy = figures["policy_value_usd_per_application"]
    assert policy["model_share_of_oracle"] > 0.85 and policy["model"] > policy["best_single_arm_value"]
    value, usd = value_per_effect(X, Economics())
    assert policy["oracle"] == pytest.approx(um.arm_policy_values(tau, tau, value, COSTS, usd)["oracle"])
    assert {"country (reminder)", "risk decile (reminder_ontime_discount)"} <= set(evaluation.segments)
    scores = validation_scores(effect, frame, seed=0)
    assert scores["r_score"] > 0 and scores["dr_qini"] > 0
    overall = average_effects(frame, seed=0, truth=tau, arms=list(COSTS))
    assert all(overall["arms"][arm]["adjusted_covers_truth"] for arm in COSTS)
    report = {
        "model": "m",
        "family": "x_learner",
        "experiment": "e",
        "cohort": "experiment",
        "economics": {**Economics().model_dump(), "currency": "local"},
        "intervention_costs": COSTS,
        "test": figures,
        "average_effect": overall,
        "overlap": {"low": 0.05, "high": 0.95, "below": 0, "above": 0, "n": len(y)},
        "trials": {"finished": 1, "errored": 0},
        "best_params": {},
    }
    text = report_markdown(report, evaluation.segments)
    assert "## Average effect of `reminder`" in text and "## The model of `reminder_ontime_discount`" in text
    assert "of the oracle" in text and "the best single arm (`reminder`)" in text
    assert "intervention costs reminder 0.2, reminder_ontime_discount 1.0" in text


@pytest.fixture(scope="module")
def multiarm_features(ray_cluster, tmp_path_factory) -> tuple[str, str]:
    """A 6,000-applicant three-option world and its feature table."""
    from tala_ray.data.generate import WorldSpec, generate_world
    from tala_ray.features.build import build_feature_table

    root = tmp_path_factory.mktemp("multiarm")
    world, features = str(root / "world"), str(root / "features")
    generate_world(WorldSpec(applicants=6_000, seed=5, chunk_size=2_000, design=ARMS), world, progress=False)
    build_feature_table(world, features, engine="local")
    return world, features


def _multiarm_spec(world: str, features: str, costs: dict[str, float]) -> object:
    from tala_ray.tuning.spec import ExperimentSpec

    return ExperimentSpec.model_validate(
        {
            "name": "multiarm",
            "data": {"source": "feature_table", "path": features, "world": world},
            "split": {"kind": "random_stratified", "valid_fraction": 0.2, "test_fraction": 0.25},
            "model": {
                "kind": "x_learner",
                "intervention_costs": costs,
                "search_space": {"nuisance_n_estimators": 60, "final_n_estimators": 60},
            },
            "trials": 1,
            "metric": "r_score",
            "mode": "max",
            "seed": 1,
            "max_failures": 0,
        }
    )


@pytest.mark.ray
def test_a_multi_arm_experiment_is_tuned_judged_against_the_oracle_and_registered(multiarm_features, tmp_path):
    from tala_ray.features.table import read_feature_table
    from tala_ray.models.predictors import load_predictor
    from tala_ray.tuning.runner import run_experiment

    world, features = multiarm_features
    outcome = run_experiment(_multiarm_spec(world, features, COSTS), str(tmp_path / "registry"), str(tmp_path / "runs"))
    report = outcome.report
    policy = report["test"]["policy_value_usd_per_application"]
    assert set(policy["model_option_shares"]) == {"none", *COSTS}
    assert policy["model"] > 0 and policy["oracle"] >= policy["model"]
    assert report["intervention_costs"] == COSTS and set(report["average_effect"]["arms"]) == set(COSTS)
    assert {"policy_share_of_oracle", "ate_reminder", "pehe_reminder_ontime_discount"} <= set(outcome.test_metrics)
    predictor = load_predictor(str(tmp_path / "registry"), "multiarm", kind="uplift")
    frame = read_feature_table(features).head(20)
    assert predictor.estimator.arm_effects(frame).shape == (20, 2)
    manifest = json.loads((tmp_path / "registry" / "multiarm" / "1" / "manifest.json").read_text())
    assert manifest["extra"]["intervention_costs"] == COSTS
    with pytest.raises(UserError, match="model.intervention_costs: arms \\['reminder'\\] are not the arms of world"):
        run_experiment(_multiarm_spec(world, features, {REMINDER: 0.2}), str(tmp_path / "r2"), str(tmp_path / "u2"))
