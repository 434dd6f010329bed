"""Benchmark: the MLP experiment with ASHA and with early stopping off, in the same run.

Prints, for each: trials per minute, time to the best validation AUC (when the best AUC of the
whole run was first reported), that AUC, and the winner's test AUC.

    tala-ray data generate --applicants 20000 --seed 7 --out data/bench_world
    tala-ray features build --world data/bench_world --out data/bench_features
    .venv/bin/python bench/tune.py --features data/bench_features --world data/bench_world
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ray import tune

from tala_ray.core.ray_runtime import ensure_ray
from tala_ray.tuning.runner import run_experiment
from tala_ray.tuning.spec import load_experiment_spec, with_data_overrides

SPEC = Path(__file__).parent.parent / "experiments" / "credit_mlp.yaml"


class AucTimeline(tune.Callback):
    """Records (seconds since start, validation AUC) for every reported result."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.points: list[tuple[float, float]] = []

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ARG002 - Ray Tune calls it by keyword
        self.points.append((time.perf_counter() - self.started, float(result["auc"])))

    def time_to_best(self) -> tuple[float, float]:
        best = max(auc for _, auc in self.points)
        return next(t for t, auc in self.points if auc == best), best


def run_variant(label: str, scheduler: dict, args: argparse.Namespace, work: Path, trials: int | None = None) -> None:
    spec = with_data_overrides(load_experiment_spec(SPEC), args.features, args.world)
    spec = spec.model_validate(
        spec.model_dump() | {"name": f"bench_mlp_{label}", "trials": trials or args.trials, "scheduler": scheduler}
    )
    timeline = AucTimeline()
    started = time.perf_counter()
    outcome = run_experiment(spec, str(work / "registry"), str(work / "runs"), callbacks=[timeline])
    if label == "warmup":
        return
    tuning_minutes = (timeline.points[-1][0] if timeline.points else time.perf_counter() - started) / 60
    seconds_to_best, best_auc = timeline.time_to_best()
    print(
        f"{label:>6}: {outcome.trials.finished} trials, {len(timeline.points)} epochs reported, "
        f"{outcome.trials.finished / tuning_minutes:.2f} trials/min, time to best AUC {seconds_to_best:.1f}s "
        f"(valid AUC {best_auc:.4f}), winner test AUC {outcome.test_metrics['auc']:.4f}, "
        f"total {outcome.elapsed_seconds:.1f}s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", required=True, help="Feature table (tala-ray features build).")
    parser.add_argument("--world", default=None, help="The world it came from (for truth-based figures).")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--address", default=None, help="Ray cluster; default: a local one.")
    args = parser.parse_args()
    ensure_ray(args.address)
    with tempfile.TemporaryDirectory(prefix="bench_tune_") as work:
        # Workers start, import torch and fetch the data once before either variant is timed.
        run_variant("warmup", {"kind": "none"}, args, Path(work), trials=2)
        asha = load_experiment_spec(SPEC).scheduler.model_dump()  # as the experiment ships
        run_variant("asha", asha, args, Path(work))
        run_variant("fifo", {"kind": "none"}, args, Path(work))


if __name__ == "__main__":
    main()
