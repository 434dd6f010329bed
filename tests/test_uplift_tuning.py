"""Uplift experiments end to end on a real local Ray cluster: tune, select, evaluate, register, load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tala_ray.tuning.spec import ExperimentSpec

pytestmark = pytest.mark.ray

SMALL_NUISANCE = {"nuisance_n_estimators": 60, "nuisance_num_leaves": 7, "cv": 2}


@pytest.fixture(scope="module")
def feature_table(small_world, tmp_path_factory) -> Path:
    from tala_ray.features.build import build_feature_table

    out = tmp_path_factory.mktemp("uplift_features") / "features"
    build_feature_table(str(small_world), str(out), engine="local")
    return out


def _spec(feature_table: Path, world: Path, name: str, model: dict, metric: str, trials: int) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": name,
            "register_as": name,
            "data": {"source": "feature_table", "path": str(feature_table), "world": str(world)},
            "split": {"kind": "random_stratified", "valid_fraction": 0.2, "test_fraction": 0.25},
            "model": model,
            "trials": trials,
            "metric": metric,
            "mode": "max",
            "seed": 3,
            "max_failures": 0,
        }
    )


def test_experiment_cohort_is_tuned_selected_and_registered(ray_cluster, small_world, feature_table, tmp_path):
    from tala_ray.core.registry import Registry
    from tala_ray.features.definitions import feature_set_version
    from tala_ray.features.table import read_feature_table
    from tala_ray.models.predictors import load_predictor
    from tala_ray.tuning.runner import run_experiment

    model = {
        "kind": "x_learner",
        "cohort": "experiment",
        "search_space": {**SMALL_NUISANCE, "final_num_leaves": {"choice": [3, 7]}, "final_n_estimators": 40},
    }
    spec = _spec(feature_table, small_world, "uplift_exp", model, "r_score", trials=2)
    outcome = run_experiment(spec, registry_uri=str(tmp_path / "registry"), runs_root=str(tmp_path / "runs"))

    assert outcome.trials.finished == 2 and outcome.version == "1"
    assert set(outcome.best_valid) >= {"r_score", "dr_qini", "dr_auuc"}  # reported per trial, no truth needed
    registry = Registry(str(tmp_path / "registry"))
    manifest = registry.manifest("uplift_exp", "1")
    assert manifest.kind == "uplift" and manifest.family == "x_learner"
    assert registry.aliases("uplift_exp") == {"champion": "1"}
    files = registry.read_verified(manifest)
    assert files["qini.png"].startswith(b"\x89PNG") and files["segments.png"].startswith(b"\x89PNG")
    report = json.loads(files["report.json"])
    test = report["test"]
    assert report["cohort"] == "experiment" and test["treated_share"] == pytest.approx(0.5, abs=0.1)
    adjusted = test["ate_adjusted"]
    assert adjusted["lower"] < adjusted["estimate"] < adjusted["upper"]
    assert report["average_effect"]["rows"] > test["rows"] and "adjusted_covers_truth" in report["average_effect"]
    assert {"pehe", "qini_share_of_oracle", "true_ate", "policy_value_usd_per_application"} <= set(test)
    policy = test["policy_value_usd_per_application"]
    assert policy["oracle"] >= max(policy["model"], policy["treat_all"], 0.0)
    assert (
        "## Effect by country" in files["report.md"].decode()
        and "## Effect by risk decile" in files["report.md"].decode()
    )

    table = read_feature_table(str(feature_table))
    predictor = load_predictor(
        str(tmp_path / "registry"), "uplift_exp", expected_feature_set_version=feature_set_version(), kind="uplift"
    )
    effect = predictor.effect(table.head(50))
    assert effect.shape == (50,) and np.isfinite(effect).all()


def test_historical_cohort_is_trimmed_and_adjusted_beats_naive(ray_cluster, small_world, feature_table, tmp_path):
    from tala_ray.tuning.runner import run_experiment

    model = {
        "kind": "linear_dml",
        "cohort": "historical",
        "overlap": {"low": 0.1, "high": 0.9},
        "search_space": {**SMALL_NUISANCE, "effect_modifiers": ["bill_count_90d", "betting_installs", "country"]},
    }
    spec = _spec(feature_table, small_world, "uplift_hist", model, "dr_qini", trials=1)
    outcome = run_experiment(spec, registry_uri=str(tmp_path / "registry"), runs_root=str(tmp_path / "runs"))

    report = outcome.report
    assert report["cohort"] == "historical"
    assert report["overlap"]["below"] + report["overlap"]["above"] > 0  # the risk-based policy leaves thin overlap
    assert report["propensity_recorded_vs_estimated_mae"] < 0.15
    overall = report["average_effect"]
    assert overall["naive"]["estimate"] < overall["true_ate"] - 0.1  # confounded: the treated were the riskier
    assert overall["adjusted_closer_than_naive"]
    assert overall["rows"] == report["overlap"]["n"] - report["overlap"]["below"] - report["overlap"]["above"]
    assert "## Average effect" in (tmp_path / "registry" / "uplift_hist" / "1" / "report.md").read_text()
