"""Benchmark: `tala-ray score` (nightly batch scoring through Ray Data) in decisions per second.

Usage: .venv/bin/python bench/score.py [--sizes 100000 1000000] [--repeat 2] [--worlds /tmp/tala-bench-features]

For each size the book is the feature table of `world-<n>-partitioned` (generated and built once,
reused when present, under --worlds). The champions are the demo's families at fixed, typical
hyperparameters: a LightGBM credit model on a logistic start (TreeSHAP explains the declines), or
the logistic baseline (--credit), and an X-learner uplift model (LightGBM outcome, propensity and
CATE models), trained once on 50,000 rows of the first book and registered under
--worlds/score-registry-<credit family>. Each repetition scores the
whole book in a fresh child process (a local cluster of --num-cpus CPUs; its start is not timed):
prints the job's seconds and decisions/s (read, decide on the actor pool, write), the CPU seconds
and peak resident memory of the child's process tree, and the 1-minute load average at the start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PeakMemory  # noqa: E402
from features import ensure_world, tree_cpu_seconds  # noqa: E402

MARKER = "FIGURES "
SERVE_CONFIG = Path(__file__).resolve().parents[1] / "serve_configs" / "credit_decision.yaml"
TRAINING_ROWS = 50_000


def ensure_book(root: Path, size: int) -> Path:
    """The feature table of the partitioned world of `size` (built once)."""
    book = root / f"book-{size}"
    if not (book / "manifest.json").exists():
        world = ensure_world(root, size, partitioned=True)
        command = [sys.executable, "-m", "tala_ray.cli", "features", "build", "--world", str(world)]
        subprocess.run([*command, "--out", str(book), "--overwrite"], check=True, capture_output=True)
    return book


def _credit_model(family: str) -> object:
    from tala_ray.models.credit import GBMCreditModel, LogisticCreditModel

    if family == "logistic":
        return LogisticCreditModel()
    return GBMCreditModel(
        n_estimators=300, learning_rate=0.03, num_leaves=8, min_child_samples=200, subsample=0.8,
        colsample_bytree=0.5, reg_lambda=1.0, boost_from_logistic=True,
    )  # fmt: skip


def ensure_registry(root: Path, book: Path, credit_family: str) -> Path:
    """A registry with a `credit_family` credit champion and an X-learner, trained on the book's first rows."""
    registry = root / f"score-registry-{credit_family}"
    if (registry / "credit_pd").exists() and (registry / "uplift").exists():
        return registry
    from tala_ray.core.registry import ArtifactMetadata, Registry
    from tala_ray.features.definitions import FEATURE_NAMES
    from tala_ray.features.table import read_feature_manifest, read_feature_table
    from tala_ray.models.uplift import XLearnerUplift

    shutil.rmtree(registry, ignore_errors=True)
    fsv = read_feature_manifest(str(book)).feature_set_version
    table = read_feature_table(str(book)).iloc[:TRAINING_ROWS]
    store = Registry(str(registry))
    credit = _credit_model(credit_family).fit(table[FEATURE_NAMES], table["defaulted"].to_numpy())
    meta = ArtifactMetadata(kind="credit", family=credit_family, feature_set_version=fsv, feature_names=FEATURE_NAMES)
    store.set_alias("credit_pd", "champion", store.register("credit_pd", credit.to_files(), meta).version)
    experiment = table[table["cohort"] == "experiment"]
    uplift = XLearnerUplift(nuisance_n_estimators=200, nuisance_num_leaves=15, final_n_estimators=100)
    uplift.fit(1 - experiment["defaulted"].to_numpy(), experiment["treatment"].to_numpy(), X=experiment[FEATURE_NAMES])
    meta = ArtifactMetadata(kind="uplift", family=uplift.family, feature_set_version=fsv, feature_names=FEATURE_NAMES)
    store.set_alias("uplift", "champion", store.register("uplift", uplift.to_files(), meta).version)
    return registry


def run_one(book: str, registry: str, out: str, num_cpus: int, batch_size: int) -> None:
    """Child process: score the book once, print one JSON line of figures."""
    import ray

    from tala_ray.jobs.score import score_book, spec_from_serve_config

    with PeakMemory() as memory:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False
        spec = spec_from_serve_config(str(SERVE_CONFIG), book, out, registry_uri=registry, batch_size=batch_size)
        cpu_before = tree_cpu_seconds()
        manifest = score_book(spec, overwrite=True)
        cpu = tree_cpu_seconds() - cpu_before
    figures = {
        "seconds": manifest.elapsed_seconds,
        "rows": manifest.rows,
        "per_second": manifest.decisions_per_second,
        "declined": manifest.decisions.get("decline", 0),
        "actors": manifest.actors,
        "cpu_seconds": cpu,
        "peak_gib": memory.peak_gib,
    }
    print(MARKER + json.dumps(figures), flush=True)


def measure(book: Path, registry: Path, out: Path, num_cpus: int, batch_size: int) -> dict:
    load = os.getloadavg()[0]
    command = [sys.executable, __file__, "--one", "--book", str(book), "--registry", str(registry)]
    command += ["--out", str(out), "--num-cpus", str(num_cpus), "--batch-size", str(batch_size)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    shutil.rmtree(out, ignore_errors=True)
    line = next(line for line in result.stdout.splitlines() if line.startswith(MARKER))
    return json.loads(line[len(MARKER) :]) | {"load": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--worlds", default="/tmp/tala-bench-features")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--credit", nargs="+", choices=["gbm", "logistic"], default=["gbm", "logistic"])
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--book", help=argparse.SUPPRESS)
    parser.add_argument("--registry", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.book, args.registry, args.out, args.num_cpus, args.batch_size)
        return

    root = Path(args.worlds)
    books = {size: ensure_book(root, size) for size in args.sizes}
    registries = {family: ensure_registry(root, books[args.sizes[0]], family) for family in args.credit}
    print(
        f"{'applications':>12} {'credit':>8} {'declined':>9} {'actors':>6} {'seconds':>8} {'decisions/s':>12}"
        f" {'cpu s':>7} {'peak GiB':>9} {'load':>6}"
    )
    for size, book in books.items():
        for _ in range(args.repeat):
            for family, registry in registries.items():
                f = measure(book, registry, root / f"scored-{size}", args.num_cpus, args.batch_size)
                print(
                    f"{f['rows']:>12,} {family:>8} {f['declined']:>9,} {f['actors']:>6} {f['seconds']:>8.1f}"
                    f" {f['per_second']:>12,.0f} {f['cpu_seconds']:>7.1f} {f['peak_gib']:>9.2f} {f['load']:>6.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
