"""Quality bar (slow): on a 50,000-applicant world the tuned winner's test AUC is within 0.02 of the
best possible AUC and above the logistic baseline. Prints the figures it reports.

Run: .venv/bin/python -m pytest -m slow tests/test_credit_quality.py -s
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tala_ray.tuning.runner import run_experiment
from tala_ray.tuning.spec import load_experiment_spec, with_data_overrides

EXPERIMENTS = Path(__file__).parent.parent / "experiments"
pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_tuned_gbm_is_near_the_best_possible_auc_and_beats_the_baseline(ray_cluster, world_50k, tmp_path):
    world, features = world_50k
    outcomes = {}
    for name in ("credit_logistic", "credit_gbm"):
        spec = with_data_overrides(load_experiment_spec(EXPERIMENTS / f"{name}.yaml"), features, world)
        outcomes[name] = run_experiment(spec, str(tmp_path / "registry"), str(tmp_path / "runs"))
    winner, baseline = outcomes["credit_gbm"], outcomes["credit_logistic"]
    best_possible = winner.report["best_possible_auc"]
    print(
        f"\nquality: gbm test AUC {winner.test_metrics['auc']:.4f}, best possible {best_possible:.4f}, "
        f"gap {winner.report['gap_to_best_possible_auc']:.4f}; tuned logistic {baseline.test_metrics['auc']:.4f}, "
        f"default logistic {winner.report['baseline_logistic_auc']:.4f}; "
        f"experiment time gbm {winner.elapsed_seconds:.0f}s, logistic {baseline.elapsed_seconds:.0f}s"
    )
    assert best_possible - winner.test_metrics["auc"] < 0.02
    assert winner.test_metrics["auc"] > baseline.test_metrics["auc"]
    assert winner.test_metrics["auc"] > winner.report["baseline_logistic_auc"]
