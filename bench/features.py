"""Benchmark: the Ray Data feature pipeline against the same feature code in one process.

Usage: .venv/bin/python bench/features.py [--sizes 50000 500000] [--worlds /tmp/tala-bench-features]

For each size, a world is generated (once; reused when present), then features are built twice,
each in a fresh child process: `engine=ray` (Ray Data on a local cluster of --num-cpus CPUs; the
cluster start is not timed, its cold workers are) and `engine=local` (one process, pandas/pyarrow
over whole tables). Prints rows/s, the ratio and the peak resident memory of each child's process
tree (driver plus Ray's processes, sampled every 0.2 s).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PeakMemory  # noqa: E402

MARKER = "FIGURES "


def run_one(engine: str, world: str, out: str, num_cpus: int) -> None:
    """Child process: build once with `engine`, print one JSON line of figures."""
    from tala_ray.features.build import build_feature_table

    with PeakMemory() as memory:
        if engine == "ray":
            import ray
            from ray.data import DataContext

            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            DataContext.get_current().enable_progress_bars = False
        started = time.perf_counter()
        manifest = build_feature_table(world, out, engine=engine, overwrite=True)
        seconds = time.perf_counter() - started
    print(
        MARKER
        + json.dumps(
            {
                "seconds": seconds,
                "rows": manifest.rows_out,
                "events": manifest.rows_in["events"],
                "peak_gib": memory.peak_gib,
            }
        )
    )


def ensure_world(root: Path, size: int) -> Path:
    world = root / f"world-{size}"
    if not (world / "manifest.json").exists():
        shutil.rmtree(world, ignore_errors=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tala_ray.cli",
                "data",
                "generate",
                "--applicants",
                str(size),
                "--seed",
                "7",
                "--out",
                str(world),
            ],
            check=True,
            capture_output=True,
        )
    return world


def measure(engine: str, world: Path, out: Path, num_cpus: int) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--one",
            engine,
            "--world",
            str(world),
            "--out",
            str(out),
            "--num-cpus",
            str(num_cpus),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    shutil.rmtree(out, ignore_errors=True)
    line = next(line for line in result.stdout.splitlines() if line.startswith(MARKER))
    return json.loads(line[len(MARKER) :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 500_000])
    parser.add_argument("--worlds", default="/tmp/tala-bench-features")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--one", choices=["ray", "local"], help=argparse.SUPPRESS)
    parser.add_argument("--world", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.one, args.world, args.out, args.num_cpus)
        return

    root = Path(args.worlds)
    print(
        f"{'applicants':>11} {'events':>11} {'engine':>6} {'seconds':>8} {'rows/s':>9} {'events/s':>10}"
        f" {'peak GiB':>9} {'ray/local':>9}"
    )
    for size in args.sizes:
        world = ensure_world(root, size)
        figures = {
            engine: measure(engine, world, root / f"features-{size}-{engine}", args.num_cpus)
            for engine in ("ray", "local")
        }
        ratio = figures["local"]["seconds"] / figures["ray"]["seconds"]
        for engine, f in figures.items():
            ratio_text = f"{ratio:.2f}" if engine == "ray" else ""
            print(
                f"{size:>11,} {f['events']:>11,} {engine:>6} {f['seconds']:>8.1f} {f['rows'] / f['seconds']:>9,.0f}"
                f" {f['events'] / f['seconds']:>10,.0f} {f['peak_gib']:>9.2f} {ratio_text:>9}",
                flush=True,
            )


if __name__ == "__main__":
    main()
