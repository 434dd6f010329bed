"""Quality bar (slow): on a 50,000-applicant world, with the shipped specs.

- experiment cohort: the tuned winner's Qini (true effects, test split) reaches 0.7 of the
  oracle's, and the average-effect confidence interval (cross-fitted AIPW over the cohort) covers
  the true average effect;
- historical cohort: the adjusted average effect is closer to the truth than the naive difference.

Prints the figures. Run: .venv/bin/python -m pytest -m slow tests/test_uplift_quality.py -s
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tala_ray.tuning.runner import run_experiment
from tala_ray.tuning.spec import load_experiment_spec, with_data_overrides

EXPERIMENTS = Path(__file__).parent.parent / "experiments"
pytestmark = [pytest.mark.slow, pytest.mark.ray]


def _run(name: str, world_50k: tuple[str, str], tmp_path: Path) -> dict:
    world, features = world_50k
    spec = with_data_overrides(load_experiment_spec(EXPERIMENTS / f"{name}.yaml"), features, world)
    outcome = run_experiment(spec, registry_uri=str(tmp_path / "registry"), runs_root=str(tmp_path / "runs"))
    report = outcome.report
    print(
        f"\n{name}: best {outcome.best_params}\n  valid {outcome.best_valid}\n  overlap {report['overlap']}"
        f"\n  average effect {json.dumps(report['average_effect'])}\n  test {json.dumps(report['test'], default=str)}"
    )
    return report


def test_experiment_cohort_winner_reaches_the_qini_bar_and_covers_the_true_effect(ray_cluster, world_50k, tmp_path):
    report = _run("uplift_xlearner", world_50k, tmp_path)
    assert report["test"]["qini_share_of_oracle"] >= 0.7
    assert report["average_effect"]["adjusted_covers_truth"]


def test_historical_cohort_adjusted_effect_beats_the_naive_difference(ray_cluster, world_50k, tmp_path):
    overall = _run("uplift_historical", world_50k, tmp_path)["average_effect"]
    assert overall["adjusted_closer_than_naive"]
    assert abs(overall["adjusted_error"]) < abs(overall["naive_error"]) / 3
