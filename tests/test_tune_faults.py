"""A Tune trial whose worker process is SIGKILLed mid-trial is retried, and the experiment finishes."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import ray.cloudpickle
from ray import tune
from test_tuning import make_spec, toy_frame

from tala_ray.core.registry import Registry
from tala_ray.tuning.families import CreditFamilyBuilder
from tala_ray.tuning.runner import run_experiment

pytestmark = pytest.mark.ray

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@dataclass(frozen=True)
class HangingOnceBuilder(CreditFamilyBuilder):
    """The first attempt of trial 00000 writes its worker's pid to `pids/` and hangs (until killed)."""

    pids: str = ""

    def train_trial(self, params, seed, train, valid, report):
        trial_id = tune.get_context().get_trial_id()
        pid_file = Path(self.pids) / trial_id
        if trial_id.endswith("00000") and not pid_file.exists():
            pid_file.write_text(str(os.getpid()))
            time.sleep(300)  # the test kills this process; finishing the sleep would fail the test's timing
        super().train_trial(params, seed, train, valid, report)


def _kill_when_started(pids: Path, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first trial worker that records its pid."""
    while not stop.is_set():
        for pid_file in pids.iterdir():
            text = pid_file.read_text()
            if text:
                pid = int(text)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.05)


def test_a_sigkilled_trial_worker_is_retried_and_the_experiment_finishes(ray_cluster, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_when_started, args=(pids, killed, stop), daemon=True)
    killer.start()
    spec = make_spec("logistic", {"C": {"loguniform": [0.01, 1.0]}}, trials=2, max_failures=1)
    builder = HangingOnceBuilder(family="logistic", pids=str(pids))
    started = time.monotonic()
    try:
        outcome = run_experiment(
            spec, str(tmp_path / "reg"), str(tmp_path / "runs"), frame=toy_frame(), builder=builder
        )
    finally:
        stop.set()
    assert len(killed) == 1 and killed[0] != os.getpid()
    assert time.monotonic() - started < 250  # the hung attempt was killed, not waited out
    counts = outcome.trials
    assert (counts.total, counts.finished, counts.errored) == (2, 2, 0)
    assert counts.crashes == 1 and counts.retries == 1
    assert Registry(str(tmp_path / "reg")).versions("toy_pd") == [outcome.version]
