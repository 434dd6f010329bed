"""Uplift on a small randomised data set of an unplanned shape: missing values, string categories."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tala_ray.data.schema import FX_PER_USD
from tala_ray.evaluation.plots import qini_png, segments_png
from tala_ray.evaluation.uplift_report import average_effects, evaluate_uplift, report_markdown, value_per_effect
from tala_ray.models.training_data import Lineage, TrainingFrame
from tala_ray.policy.economics import Economics
from tala_ray.tuning.spec import ExperimentSpec

PLANTED_EFFECT = 0.15  # the treatment lowers the bad rate by 15 points for everyone


def planted_table(n: int, seed: int) -> pd.DataFrame:
    """A randomised trial: bad outcome 1/0, treatment 'yes'/'no', gaps in a numeric and a string column."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east"], n)
    income = rng.lognormal(3, 0.5, n)
    treated = rng.random(n) < 0.5
    p_bad = np.clip(0.45 + 0.1 * (region == "north") - 0.002 * income - PLANTED_EFFECT * treated, 0.02, 0.98)
    table = pd.DataFrame(
        {
            "customer": [f"c{i:05d}" for i in range(n)],
            "Region ": region,
            "monthly income": np.where(rng.random(n) < 0.1, np.nan, income),
            "channel": np.where(rng.random(n) < 0.1, None, rng.choice(["sms", "app"], n)),
            "got_offer": np.where(treated, "yes", "no"),
            "bad": (rng.random(n) < p_bad).astype(int),
        }
    )
    return table


def frame_of(table: pd.DataFrame) -> TrainingFrame:
    return TrainingFrame(
        features=table[["Region ", "monthly income", "channel"]],
        target=table["bad"].to_numpy(),
        ids=table["customer"].to_numpy(),
        treatment=(table["got_offer"] == "yes").to_numpy(dtype=np.int64),
        lineage=Lineage(source="planted.csv"),
    )


def test_evaluation_without_truth_reports_the_average_effect_and_segments():
    frame = frame_of(planted_table(600, seed=1))
    effect = np.full(600, 0.1)
    evaluation = evaluate_uplift(effect, frame, Economics(), seed=0)
    figures = evaluation.figures
    assert "true_ate" not in figures and set(evaluation.segments) == {"risk decile"}
    assert figures["ate_adjusted"]["lower"] < PLANTED_EFFECT < figures["ate_adjusted"]["upper"]
    assert qini_png(evaluation.curves).startswith(b"\x89PNG") and segments_png(evaluation.segments).startswith(
        b"\x89PNG"
    )
    overall = average_effects(frame, seed=0)
    assert overall["adjusted"]["lower"] < PLANTED_EFFECT < overall["adjusted"]["upper"] and "true_ate" not in overall
    report = {
        "model": "m",
        "family": "t_learner",
        "experiment": "e",
        "cohort": "dataset",
        "test": figures,
        "average_effect": overall,
        "overlap": {"low": 0.05, "high": 0.95, "below": 0, "above": 0, "n": 600},
        "trials": {"finished": 1, "errored": 0},
        "best_params": {},
    }
    text = report_markdown(report, evaluation.segments)
    assert "adjusted (AIPW)" in text and "truth" not in text and "## Effect by risk decile" in text


def test_the_policy_value_is_reckoned_in_local_currency_and_reported_in_usd():
    features = pd.DataFrame({"loan_amount_usd": [100.0, 100.0], "term_days": [30.0, 60.0], "country": ["KE", "MX"]})
    economics = Economics(fee_rate_per_30_days=0.1, loss_given_default=0.9, intervention_cost=2.0)
    value, usd_per_local = value_per_effect(features, economics)
    fx = np.array([FX_PER_USD["KE"], FX_PER_USD["MX"]])
    np.testing.assert_allclose(value, np.array([0.1 + 0.9, 0.2 + 0.9]) * 100.0 * fx)
    np.testing.assert_allclose(usd_per_local, 1.0 / fx)
    assert value_per_effect(features.drop(columns="country"), economics) == (1.0, 1.0)


@pytest.mark.ray
def test_a_csv_through_a_dataset_spec_reports_an_interval_covering_the_planted_effect(ray_cluster, tmp_path):
    from tala_ray.tuning.runner import run_experiment

    table = planted_table(500, seed=2)
    csv = table.assign(
        got_offer=np.where(table["got_offer"] == "yes", "TRUE", "FALSE"),
        status=np.where(table["bad"] == 1, "BAD", "good"),
    ).drop(columns="bad")
    csv.loc[[3, 40, 77], "status"] = None  # no outcome: quarantined by the loader, not used
    csv.to_csv(tmp_path / "trial export.csv", index=False)
    (tmp_path / "trial.yaml").write_text(
        "path: trial export.csv\nid_column: customer\ntarget: {column: status, bad_value: bad}\n"
        "treatment_column: got_offer\n"
    )
    spec = ExperimentSpec.model_validate(
        {
            "name": "planted",
            "data": {"source": "dataset_spec", "path": str(tmp_path / "trial.yaml")},
            "split": {"kind": "random_stratified", "valid_fraction": 0.2, "test_fraction": 0.4},
            "model": {
                "kind": "t_learner",
                "search_space": {
                    "nuisance_n_estimators": 30,
                    "nuisance_num_leaves": 4,
                    "nuisance_min_child_samples": 10,
                },
            },
            "trials": 1,
            "metric": "dr_qini",
            "mode": "max",
            "seed": 0,
            "max_failures": 0,
        }
    )
    outcome = run_experiment(spec, registry_uri=str(tmp_path / "registry"), runs_root=str(tmp_path / "runs"))
    overall = outcome.report["average_effect"]
    assert overall["rows"] == 497
    assert overall["adjusted"]["lower"] <= PLANTED_EFFECT <= overall["adjusted"]["upper"]
    manifest = json.loads((tmp_path / "registry" / "planted" / "1" / "manifest.json").read_text())
    assert manifest["kind"] == "uplift" and set(manifest["feature_names"]) == {"Region ", "monthly income", "channel"}
