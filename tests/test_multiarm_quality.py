"""Quality bar (slow): several arms and a continuous outcome on a 50,000-applicant world generated with
both (`--arms reminder,reminder_ontime_discount --days-late`), with the shipped specs.

- `uplift_multiarm.yaml`: the registered X-learner's policy (per applicant, the arm worth most net of
  its cost, or none) reaches at least 0.85 of the oracle's value on a fresh 10,000-applicant holdout
  world, and more than the best single arm given to everyone;
- `uplift_continuous.yaml` (days late) over the same arms: each arm's average-effect interval
  (cross-fitted AIPW over the cohort) covers its true average effect; the share of rows whose per-row
  interval covers their true effect is printed.

Prints the figures. Run: .venv/bin/python -m pytest -m slow tests/test_multiarm_quality.py -s
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tala_ray.evaluation.truth import true_arm_effects
from tala_ray.evaluation.uplift_report import value_per_effect
from tala_ray.features.table import read_feature_table
from tala_ray.models import uplift_metrics as um
from tala_ray.models.predictors import load_predictor
from tala_ray.tuning.runner import run_experiment
from tala_ray.tuning.spec import load_experiment_spec, with_data_overrides

EXPERIMENTS = Path(__file__).parent.parent / "experiments"
pytestmark = [pytest.mark.slow, pytest.mark.ray]


def _world(root: Path, name: str, applicants: int, seed: int) -> tuple[str, str]:
    world, features = str(root / f"{name}_world"), str(root / f"{name}_features")
    design = ("--arms", "reminder,reminder_ontime_discount", "--days-late")
    for args in (
        ("data", "generate", "--applicants", str(applicants), "--seed", str(seed), "--out", world, *design),
        ("features", "build", "--world", world, "--out", features),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "tala_ray.cli", *args], capture_output=True, text=True, timeout=1800
        )
        assert result.returncode == 0, result.stderr[-3000:]
    return world, features


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> dict[str, tuple[str, str]]:
    root = tmp_path_factory.mktemp("multiarm_50k")
    return {"train": _world(root, "train", 50_000, 7), "holdout": _world(root, "holdout", 10_000, 8)}


def test_the_multi_arm_policy_reaches_the_oracle_bar_on_a_holdout_world(ray_cluster, worlds, tmp_path):
    world, features = worlds["train"]
    spec = with_data_overrides(load_experiment_spec(EXPERIMENTS / "uplift_multiarm.yaml"), features, world)
    outcome = run_experiment(spec, registry_uri=str(tmp_path / "registry"), runs_root=str(tmp_path / "runs"))
    test_policy = outcome.report["test"]["policy_value_usd_per_application"]
    holdout_world, holdout_features = worlds["holdout"]
    table = read_feature_table(holdout_features)
    model = load_predictor(str(tmp_path / "registry"), spec.model_name, kind="uplift").estimator
    costs = spec.model.arm_costs()
    truth = true_arm_effects(holdout_world, table["application_id"].to_numpy(), "defaulted", list(costs))
    value, usd = value_per_effect(table, spec.model.economics)
    holdout = um.arm_policy_values(model.arm_effects(table), truth, value, costs, usd)
    print(
        f"\nuplift_multiarm: best {outcome.best_params}\n  test split {json.dumps(test_policy)}"
        f"\n  holdout world ({len(table)} applications) {json.dumps(holdout)}"
    )
    assert holdout["model_share_of_oracle"] >= 0.85
    assert holdout["model"] > holdout["best_single_arm_value"]


def test_every_arms_days_late_effect_is_covered(ray_cluster, worlds, tmp_path):
    world, features = worlds["train"]
    spec = with_data_overrides(load_experiment_spec(EXPERIMENTS / "uplift_continuous.yaml"), features, world)
    arms = load_experiment_spec(EXPERIMENTS / "uplift_multiarm.yaml").model.intervention_costs
    spec = spec.model_validate(spec.model_dump() | {"model": spec.model.model_dump() | {"intervention_costs": arms}})
    outcome = run_experiment(spec, registry_uri=str(tmp_path / "registry"), runs_root=str(tmp_path / "runs"))
    overall = outcome.report["average_effect"]
    table = read_feature_table(features)
    table = table[table["cohort"] == "experiment"].sample(4_000, random_state=0)
    model = load_predictor(str(tmp_path / "registry"), spec.model_name, kind="uplift").estimator
    truth = true_arm_effects(world, table["application_id"].to_numpy(), "days_late", list(arms))
    print(f"\nuplift_continuous x arms: average effect {json.dumps(overall)}")
    for k, arm in enumerate(arms):
        lower, upper = model.effect_interval(table, T1=k + 1)
        covered = float(np.mean((lower <= truth[:, k]) & (truth[:, k] <= upper)))
        print(
            f"  {arm}: true ATE {truth[:, k].mean():.3f} days; per-row 95% intervals covering the true effect "
            f"{covered:.1%}, mean width {np.mean(upper - lower):.2f} days"
        )
        assert overall["arms"][arm]["adjusted_covers_truth"]
