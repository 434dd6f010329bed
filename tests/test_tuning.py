"""The tuning runner on a real local Ray cluster: winner registered, crashes retried, resume after interrupt."""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import ray.cloudpickle
from ray import tune
from test_credit_models import toy_credit_frame

from tala_ray.core.registry import Registry
from tala_ray.models.predictors import load_predictor
from tala_ray.models.training_data import TrainingFrame
from tala_ray.tuning.families import CreditFamilyBuilder
from tala_ray.tuning.runner import ExperimentInterrupted, run_experiment
from tala_ray.tuning.spec import ExperimentSpec

pytestmark = pytest.mark.ray

# Test-only builders and callbacks travel to Ray workers by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def toy_frame() -> TrainingFrame:
    features, y = toy_credit_frame(n=2400, seed=3)
    return TrainingFrame(features=features, target=y, ids=np.arange(len(y)), times=np.arange(len(y)))


def make_spec(kind: str, space: dict, trials: int = 3, **extra) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": f"toy_{kind}",
            "register_as": "toy_pd",
            "data": {"source": "feature_table", "path": "unused-a-frame-is-given"},
            "split": {"kind": "out_of_time", "valid_fraction": 0.2, "test_fraction": 0.2},
            "model": {"kind": kind, "search_space": space},
            "trials": trials,
            "seed": 5,
            **extra,
        }
    )


def test_mlp_with_asha_registers_a_loadable_winner(ray_cluster, tmp_path):
    spec = make_spec(
        "mlp",
        {"learning_rate": {"loguniform": [1e-4, 1e-2]}, "hidden_sizes": {"choice": [[16], [16, 8]]}, "epochs": 3},
        scheduler={"kind": "asha", "grace_period": 1, "max_t": 3},
    )
    outcome = run_experiment(spec, str(tmp_path / "reg"), str(tmp_path / "runs"), frame=toy_frame())
    assert outcome.trials.finished == 3 and outcome.trials.crashes == 0
    assert set(outcome.best_valid) >= {"auc", "gini", "ks", "brier", "log_loss", "calibration_error"}
    assert outcome.test_metrics["auc"] > 0.7
    assert outcome.report["baseline_logistic_auc"] > 0.7
    assert outcome.report["lift_over_baseline_auc"] == pytest.approx(
        outcome.test_metrics["auc"] - outcome.report["baseline_logistic_auc"]
    )

    registry = Registry(str(tmp_path / "reg"))
    manifest = registry.manifest("toy_pd", outcome.version)
    assert {"roc.png", "calibration.png", "report.json", "report.md", "weights.npz"} <= set(manifest.files)
    assert manifest.spec["name"] == "toy_mlp" and manifest.params == outcome.best_params
    assert registry.aliases("toy_pd") == {"champion": outcome.version}  # the first model becomes champion
    files = registry.read_verified(manifest, only=["roc.png", "report.json"])
    assert files["roc.png"].startswith(b"\x89PNG")
    assert json.loads(files["report.json"])["test_metrics"]["auc"] == pytest.approx(outcome.test_metrics["auc"])

    predictor = load_predictor(str(tmp_path / "reg"), "toy_pd", kind="credit")
    features, _ = toy_credit_frame(n=50, seed=9)
    p_default = predictor.predict_proba(features)
    assert p_default.shape == (50,) and ((p_default > 0) & (p_default < 1)).all()


@dataclass(frozen=True)
class CrashingBuilder(CreditFamilyBuilder):
    """Every trial crashes on its first attempt; trial 00001 crashes on every attempt."""

    markers: str = ""

    def train_trial(self, params, seed, train, valid, report):
        trial_id = tune.get_context().get_trial_id()
        marker = Path(self.markers) / trial_id
        if trial_id.endswith("00001") or not marker.exists():
            marker.touch()
            raise RuntimeError(f"injected crash in {trial_id}")
        super().train_trial(params, seed, train, valid, report)


def test_crashed_trials_are_retried_counted_and_the_experiment_goes_on(ray_cluster, tmp_path):
    spec = make_spec("logistic", {"C": {"loguniform": [0.01, 1.0]}}, trials=2, max_failures=1)
    builder = CrashingBuilder(family="logistic", markers=str(tmp_path))
    outcome = run_experiment(spec, str(tmp_path / "reg"), str(tmp_path / "runs"), frame=toy_frame(), builder=builder)
    counts = outcome.trials
    assert (counts.total, counts.finished, counts.errored) == (2, 1, 1)
    assert counts.crashes == 3 and counts.retries == 2  # 00001 crashed twice, was retried once, then gave up
    assert Registry(str(tmp_path / "reg")).versions("toy_pd") == [outcome.version]


class InterruptAfterFirstTrial(tune.Callback):
    """Sends SIGUSR1 (Tune's graceful stop) once the first trial finishes; logs every trial start."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = Path(log_dir)

    def on_trial_start(self, iteration, trials, trial, **info):
        with open(self.log_dir / "starts.txt", "a") as log:
            log.write(trial.trial_id + "\n")

    def on_trial_complete(self, iteration, trials, trial, **info):
        marker = self.log_dir / "interrupted"
        if not marker.exists():
            marker.write_text(trial.trial_id)
            os.kill(os.getpid(), signal.SIGUSR1)


def test_interrupted_experiment_resumes_without_redoing_finished_trials(ray_cluster, tmp_path):
    spec = make_spec("gbm", {"n_estimators": 40, "num_leaves": {"randint": [4, 16]}, "report_every": 10}, trials=3)
    registry, runs = str(tmp_path / "reg"), str(tmp_path / "runs")
    with pytest.raises(ExperimentInterrupted, match="--resume"):
        run_experiment(spec, registry, runs, frame=toy_frame(), callbacks=[InterruptAfterFirstTrial(str(tmp_path))])
    assert Registry(registry).versions("toy_pd") == []
    finished_first = (tmp_path / "interrupted").read_text()

    outcome = run_experiment(spec, registry, runs, resume=True, frame=toy_frame())
    assert outcome.trials.finished == 3
    starts = (tmp_path / "starts.txt").read_text().split()
    assert len(set(starts)) == 3  # the restored run logged the trials it started
    assert starts.count(finished_first) == 1  # the finished trial was not run again
    assert Registry(registry).versions("toy_pd") == [outcome.version]


def test_a_second_run_needs_resume_or_overwrite(ray_cluster, tmp_path):
    from tala_ray.core.errors import UserError

    spec = make_spec("logistic", {"C": 1.0}, trials=1)
    run_experiment(spec, str(tmp_path / "reg"), str(tmp_path / "runs"), frame=toy_frame())
    with pytest.raises(UserError, match="--resume"):
        run_experiment(spec, str(tmp_path / "reg"), str(tmp_path / "runs"), frame=toy_frame())
    again = run_experiment(spec, str(tmp_path / "reg"), str(tmp_path / "runs"), frame=toy_frame(), overwrite=True)
    assert again.version == "2"
