"""Continuous outcomes: a planted effect is covered by its interval, a placebo's interval holds 0, the CSV
path with odd column names runs end to end, the world's days late carry a known true effect, and a
continuous target meeting a credit model or a binary-only rule is a one-line error naming the field."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from tala_ray.core.errors import UserError
from tala_ray.data.dataset_spec import load_dataset, load_dataset_spec
from tala_ray.data.design import WRITE_OFF_DAYS, Design
from tala_ray.data.schema import truth_expected_column
from tala_ray.data.world import simulate_chunk
from tala_ray.evaluation.uplift_report import average_effects, evaluate_uplift, report_markdown
from tala_ray.models import uplift_metrics as um
from tala_ray.models.data_spec import TargetColumn
from tala_ray.models.training_data import Lineage, TrainingFrame, frame_from_feature_table, split_frame
from tala_ray.models.uplift import UPLIFT_ESTIMATORS
from tala_ray.models.uplift_validation import outcome, validation_scores
from tala_ray.policy.economics import Economics
from tala_ray.tuning.families import CREDIT_BUILDERS
from tala_ray.tuning.spec import ExperimentSpec

PLANTED = -2.5  # the treatment shortens days late by 2.5 days for everyone
FAST = {"nuisance_n_estimators": 60, "nuisance_num_leaves": 7, "cv": 2}
FOREST = {"n_estimators": 400, "min_samples_leaf": 100}


def planted_trial(n: int, seed: int, effect: float) -> pd.DataFrame:
    """A randomised trial with a continuous outcome, odd column names and gaps in the inputs."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["nord", "süd", "ost"], n)
    income = rng.lognormal(3, 0.5, n)
    treated = rng.random(n) < 0.5
    late = 6.0 + 2.0 * (region == "nord") - 0.05 * income + effect * treated + rng.normal(0, 2.0, n)
    return pd.DataFrame(
        {
            "Kunde #": [f"k{i:05d}" for i in range(n)],
            "Région ": region,
            "monthly income ($)": np.where(rng.random(n) < 0.1, np.nan, income),
            "Got SMS?": np.where(treated, "TRUE", "FALSE"),
            "Days late (d)": np.round(late, 2),
        }
    )


def frame_of(table: pd.DataFrame) -> TrainingFrame:
    return TrainingFrame(
        features=table[["Région ", "monthly income ($)"]],
        target=table["Days late (d)"].to_numpy(dtype=np.float64),
        ids=table["Kunde #"].to_numpy(),
        treatment=(table["Got SMS?"] == "TRUE").to_numpy(dtype=np.int64),
        target_type="continuous",
        target_name="Days late (d)",
    )


@pytest.mark.parametrize("effect", [PLANTED, 0.0], ids=["planted", "placebo"])
def test_the_interval_covers_the_planted_effect_and_a_placebo_interval_holds_zero(effect):
    frame = frame_of(planted_trial(3_000, seed=5, effect=effect))
    y, t = outcome(frame), frame.treatment
    assert np.array_equal(y, frame.target)  # a continuous target is fitted as it is
    overall = average_effects(frame, seed=0)
    assert overall["adjusted"]["lower"] <= effect <= overall["adjusted"]["upper"]
    assert overall["naive"]["lower"] <= effect <= overall["naive"]["upper"]
    # Per-row 95% intervals: LinearDML (correctly specified here) covers every row; the honest forest
    # with large leaves 90-100% of rows (seeds 5-7; with the default leaves 83-99%).
    for family, params, coverage in (("linear_dml", {}, 0.95), ("causal_forest", FOREST, 0.85)):
        model = UPLIFT_ESTIMATORS[family](**FAST, **params, seed=0).fit(y, t, X=frame.features)
        lower, upper = model.effect_interval(frame.features)
        covered = np.mean((lower <= effect) & (effect <= upper))
        assert covered >= coverage, (family, covered)
        assert abs(np.mean(model.effect(frame.features)) - effect) < 0.3


def test_a_continuous_report_speaks_in_the_outcomes_units_without_a_policy_value():
    frame = frame_of(planted_trial(900, seed=6, effect=PLANTED))
    effect = np.full(900, PLANTED)
    evaluation = evaluate_uplift(effect, frame, Economics(), seed=0, truth=np.full(900, PLANTED))
    figures = evaluation.figures
    assert "policy_value_usd_per_application" not in figures
    assert set(evaluation.segments) == {"outcome decile"}
    assert figures["ate_adjusted"]["lower"] <= PLANTED <= figures["ate_adjusted"]["upper"]
    assert figures["pehe"] == pytest.approx(0.0)
    scores = validation_scores(effect, frame, seed=0)
    assert set(scores) == {"r_score", "dr_qini", "dr_auuc"} and np.isfinite(list(scores.values())).all()
    report = {
        "model": "m",
        "family": "linear_dml",
        "experiment": "e",
        "cohort": "dataset",
        "target": {"column": "Days late (d)", "type": "continuous"},
        "test": figures,
        "average_effect": average_effects(frame, seed=0),
        "overlap": {"low": 0.05, "high": 0.95, "below": 0, "above": 0, "n": 900},
        "trials": {"finished": 1, "errored": 0},
        "best_params": {},
    }
    text = report_markdown(report, evaluation.segments)
    assert "treated-minus-control changes in `Days late (d)`" in text and "reductions in default" not in text
    assert "policy value: needs a binary default target" in text


def test_a_random_split_of_a_continuous_target_keeps_its_quintiles():
    frame = frame_of(planted_trial(1_000, seed=7, effect=PLANTED))
    spec = ExperimentSpec.model_validate(_spec({"source": "dataset_spec", "path": "x.yaml"}, "linear_dml")).split
    splits = split_frame(frame, spec, seed=0)
    assert {len(splits.train.target), len(splits.valid.target), len(splits.test.target)} == {600, 200}
    assert abs(np.median(splits.test.target) - np.median(frame.target)) < 0.5
    assert splits.test.target_type == "continuous" and splits.test.target_name == "Days late (d)"


def _spec(data: dict, kind: str, metric: str = "r_score") -> dict:
    return {
        "name": "continuous",
        "data": data,
        "split": {"kind": "random_stratified", "valid_fraction": 0.2, "test_fraction": 0.2},
        "model": {"kind": kind, "search_space": {"nuisance_n_estimators": 30}},
        "trials": 1,
        "metric": metric,
        "mode": "max",
    }


def test_a_continuous_target_meeting_a_credit_model_names_the_field(tmp_path):
    table = {"source": "feature_table", "path": "f", "target": {"column": "days_late", "type": "continuous"}}
    gbm = _spec(table, "gbm", "auc") | {"model": {"kind": "gbm", "search_space": {"n_estimators": 10}}}
    with pytest.raises(ValidationError, match="data.target.type: 'days_late' is continuous; model.kind gbm"):
        ExperimentSpec.model_validate(gbm)
    with pytest.raises(ValidationError, match="metric: auc does not fit model.kind linear_dml"):
        ExperimentSpec.model_validate(_spec(table, "linear_dml", "auc"))  # a binary-only metric
    # A dataset spec's target type is known once its file is read: the credit family refuses the frame.
    frame = frame_of(planted_trial(100, seed=1, effect=0.0))
    spec = ExperimentSpec.model_validate(
        _spec({"source": "dataset_spec", "path": "x.yaml"}, "gbm", "auc")
        | {"model": {"kind": "gbm", "search_space": {"n_estimators": 10}}}
    )
    with pytest.raises(UserError, match="data.target.type: 'Days late \\(d\\)' is continuous; a credit model"):
        CREDIT_BUILDERS["gbm"].prepare(spec, frame)


def test_dataset_spec_continuous_targets_load_and_bad_ones_name_the_field(tmp_path):
    table = planted_trial(60, seed=2, effect=PLANTED)
    table.loc[[4, 9], "Days late (d)"] = None  # no outcome: quarantined
    table.to_csv(tmp_path / "trial export.csv", index=False)

    def spec(**target: object) -> str:
        path = tmp_path / "spec.yaml"
        path.write_text(
            yaml.safe_dump(
                {"path": "trial export.csv", "id_column": "Kunde #", "target": target, "treatment_column": "Got SMS?"}
            )
        )
        return str(path)

    loaded = load_dataset(load_dataset_spec(spec(column="Days late (d)", type="continuous")))
    assert loaded.target.dtype == np.float64 and len(loaded.target) == 58
    assert loaded.quarantined["reason"].tolist() == ["missing_target", "missing_target"]
    assert set(loaded.features.columns) == {"Région ", "monthly income ($)"}
    with pytest.raises(UserError, match="target.bad_value: a continuous target has no bad value"):
        load_dataset_spec(spec(column="Days late (d)", type="continuous", bad_value=1))
    with pytest.raises(
        UserError, match="is continuous \\(target.type\\) but holds '(nord|süd|ost)', not a finite number"
    ):
        load_dataset(load_dataset_spec(spec(column="Région ", type="continuous")))
    with pytest.raises(UserError, match="has 2 distinct values; target.type continuous needs"):
        load_dataset(load_dataset_spec(spec(column="Got SMS?", type="continuous")))


def test_a_feature_table_target_must_be_one_of_its_columns():
    table = pd.DataFrame(
        {"application_id": [1, 2], "application_time": [0, 1], "defaulted": [0, 1], "days_late": [0.0, 30.0]}
    ).assign(x=[1.0, 2.0])
    frame = frame_from_feature_table(table, Lineage(source="f"), ["x"])
    assert frame.target_type == "binary" and frame.target.tolist() == [0, 1]
    late = frame_from_feature_table(
        table, Lineage(source="f"), ["x"], TargetColumn(column="days_late", type="continuous")
    )
    assert late.target.tolist() == [0.0, 30.0] and late.target_name == "days_late"
    with pytest.raises(UserError, match="data.target.column: 'amount_repaid' is not a column of feature table 'f'"):
        frame_from_feature_table(
            table, Lineage(source="f"), ["x"], TargetColumn(column="amount_repaid", type="continuous")
        )


@pytest.fixture(scope="module")
def days_late_world() -> dict[str, pd.DataFrame]:
    """A 12,000-applicant chunk of a world that records days late (one arm)."""
    from tala_ray.features.definitions import compute_features

    tables = {k: v.to_pandas() for k, v in simulate_chunk(4, 0, 0, 12_000, Design(days_late=True)).items()}
    features = compute_features(tables["applications"], tables["applicants"], tables["events"], tables["loans"])
    return tables | {"features": features}


def test_the_worlds_days_late_follow_their_known_expectation(days_late_world):
    apps, truth = days_late_world["applications"], days_late_world["truth"]
    late = apps["days_late"].to_numpy()
    assert ((late >= 0) & (late <= WRITE_OFF_DAYS)).all()
    assert (late[apps["defaulted"] == 1] == WRITE_OFF_DAYS).all() and (
        late[apps["defaulted"] == 0] < WRITE_OFF_DAYS
    ).all()
    for code, option in enumerate(("none", "reminder_ontime_discount")):
        rows = (apps["treatment"] == code).to_numpy()
        observed = um.mean_with_ci(late[rows])
        assert observed.covers(truth[truth_expected_column("days_late", option)].to_numpy()[rows].mean())
    effect = truth["expected_days_late_reminder_ontime_discount"] - truth["expected_days_late_none"]
    assert effect.mean() < -0.3 and effect.std() > abs(effect.mean()) / 2  # shortens days late, unevenly
    by_occupation = effect.groupby(truth["occupation"]).mean()
    assert by_occupation["trader"] < by_occupation["salaried"]


def test_the_worlds_true_average_effect_on_days_late_is_covered(days_late_world):
    apps, truth, features = days_late_world["applications"], days_late_world["truth"], days_late_world["features"]
    exp = (apps["cohort"] == "experiment").to_numpy()
    frame = TrainingFrame(
        features=features[exp].drop(columns="application_id").reset_index(drop=True),
        target=apps["days_late"].to_numpy()[exp],
        ids=apps["application_id"].to_numpy()[exp],
        treatment=apps["treatment"].to_numpy()[exp].astype(np.int64),
        target_type="continuous",
        target_name="days_late",
    )
    true_effect = (truth["expected_days_late_reminder_ontime_discount"] - truth["expected_days_late_none"]).to_numpy()
    overall = average_effects(frame, seed=0, truth=true_effect[exp])
    assert overall["adjusted_covers_truth"], overall


@pytest.mark.ray
def test_a_csv_with_odd_column_names_and_a_continuous_target_runs_end_to_end(ray_cluster, tmp_path):
    from tala_ray.tuning.runner import run_experiment

    planted_trial(1_200, seed=8, effect=PLANTED).to_csv(tmp_path / "trial export.csv", index=False)
    (tmp_path / "trial.yaml").write_text(
        yaml.safe_dump(
            {
                "path": "trial export.csv",
                "id_column": "Kunde #",
                "target": {"column": "Days late (d)", "type": "continuous"},
                "treatment_column": "Got SMS?",
            }
        )
    )
    spec = ExperimentSpec.model_validate(
        _spec({"source": "dataset_spec", "path": str(tmp_path / "trial.yaml")}, "linear_dml")
        | {"model": {"kind": "linear_dml", "search_space": {"nuisance_n_estimators": 40, "cv": 2}}, "seed": 0}
        | {"max_failures": 0}
    )
    outcome_ = run_experiment(spec, registry_uri=str(tmp_path / "registry"), runs_root=str(tmp_path / "runs"))
    overall = outcome_.report["average_effect"]
    assert overall["adjusted"]["lower"] <= PLANTED <= overall["adjusted"]["upper"]
    assert outcome_.report["target"] == {"column": "Days late (d)", "type": "continuous"}
    version = tmp_path / "registry" / "continuous" / "1"
    manifest = json.loads((version / "manifest.json").read_text())
    assert set(manifest["feature_names"]) == {"Région ", "monthly income ($)"}
    assert "changes in `Days late (d)`" in (version / "report.md").read_text()
    assert abs(outcome_.test_metrics["ate"] - PLANTED) < 0.5
