"""A credit experiment on a CSV nobody planned for, through a dataset spec: odd column order, string
categoricals, missing values, a target labelled "good"/"bad", rows without a target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from tala_ray.core.errors import UserError
from tala_ray.models.predictors import load_predictor
from tala_ray.models.training_data import load_training_frame, split_frame
from tala_ray.tuning.runner import run_experiment
from tala_ray.tuning.spec import ExperimentSpec


def write_odd_csv(tmp_path, n: int = 3000) -> str:
    rng = np.random.default_rng(21)
    region = rng.choice(["north", "South ", "east-west", "Ñorte"], size=n)
    salary = rng.lognormal(6, 0.5, n).round(2)
    arrears = rng.poisson(1.0, n)
    logit = -2.0 + 0.9 * arrears - 0.8 * (np.log(salary) - 6) / 0.5 + 1.2 * (region == "east-west")
    bad = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "Months In Arrears": arrears.astype(float),
            "outcome": np.where(bad, "bad", "good"),
            "monthly salary (KES)": salary,
            "customer ref": [f"C-{i:06d}" for i in range(n)],
            "Region": region,
            "noise": rng.normal(size=n),
        }
    )
    frame.loc[rng.random(n) < 0.08, "monthly salary (KES)"] = np.nan
    frame.loc[rng.random(n) < 0.05, "Region"] = None
    frame.loc[rng.random(n) < 0.01, "outcome"] = None  # quarantined by the loader
    csv = tmp_path / "loans export.csv"
    frame.to_csv(csv, index=False)
    spec = {
        "path": csv.name,
        "id_column": "customer ref",
        "target": {"column": "outcome", "bad_value": "bad"},
    }
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return str(tmp_path / "dataset.yaml")


def experiment(dataset_yaml: str, split_kind: str = "random_stratified") -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "odd_csv_gbm",
            "data": {"source": "dataset_spec", "path": dataset_yaml},
            "split": {"kind": split_kind, "valid_fraction": 0.2, "test_fraction": 0.2},
            "model": {"kind": "gbm", "search_space": {"n_estimators": 80, "num_leaves": {"randint": [4, 12]}}},
            "trials": 2,
            "seed": 3,
        }
    )


def test_experiment_on_an_unplanned_csv(ray_cluster, tmp_path):
    dataset_yaml = write_odd_csv(tmp_path)
    outcome = run_experiment(experiment(dataset_yaml), str(tmp_path / "reg"), str(tmp_path / "runs"))
    print(
        f"\nodd CSV via dataset spec: test AUC {outcome.test_metrics['auc']:.4f}, "
        f"logistic baseline {outcome.report['baseline_logistic_auc']:.4f}"
    )
    assert outcome.test_metrics["auc"] > 0.75
    assert "best_possible_auc" not in outcome.report  # no truth table for outside data
    assert 0 < outcome.report["quarantined_rows"] < 100  # rows without an outcome, counted

    predictor = load_predictor(str(tmp_path / "reg"), "odd_csv_gbm", kind="credit")
    assert set(predictor.feature_names) == {"Months In Arrears", "monthly salary (KES)", "Region", "noise"}
    batch = pd.DataFrame(
        {
            "Region": ["east-west", "north", None],
            "noise": [0.0] * 3,
            "Months In Arrears": [3.0, 0.0, np.nan],
            "monthly salary (KES)": [200.0, 2000.0, np.nan],
        }
    )
    p_default = predictor.predict_proba(batch)
    assert p_default[0] > p_default[1] and np.isfinite(p_default).all()


def test_rows_without_target_are_quarantined_not_trained_on(tmp_path):
    frame = load_training_frame(experiment(write_odd_csv(tmp_path)).data)
    assert 2900 < len(frame.target) < 3000 and set(np.unique(frame.target)) == {0, 1}


def test_out_of_time_split_needs_time(tmp_path):
    spec = experiment(write_odd_csv(tmp_path), split_kind="out_of_time")
    with pytest.raises(UserError, match="out_of_time needs application times"):
        split_frame(load_training_frame(spec.data), spec.split, seed=0)
