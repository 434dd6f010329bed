"""Benchmark: time and peak memory of `data generate` at several sizes, on a local Ray cluster.

Usage: .venv/bin/python bench/generate.py [--sizes 50000 1000000] [--out /tmp/tala-bench-world]
Peak memory is the resident memory of the driver plus its Ray cluster (GCS, raylet, workers),
sampled every 0.2 s. Each size is generated into a fresh directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import ray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PeakMemory  # noqa: E402

from tala_ray.data.generate import WorldSpec, generate_world  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 1_000_000])
    parser.add_argument("--out", default="/tmp/tala-bench-world")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the generated worlds")
    args = parser.parse_args()

    print(f"{'applicants':>12} {'events':>12} {'seconds':>9} {'applicants/s':>13} {'events/s':>11} {'peak GiB':>9}")
    for size in args.sizes:
        out = Path(args.out) / str(size)
        shutil.rmtree(out, ignore_errors=True)
        with PeakMemory() as memory:
            ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False)
            started = time.perf_counter()
            manifest = generate_world(WorldSpec(applicants=size, seed=7), str(out), overwrite=True, progress=False)
            seconds = time.perf_counter() - started
            ray.shutdown()
        events = manifest.tables["events"].rows
        print(
            f"{size:>12,} {events:>12,} {seconds:>9.1f} {size / seconds:>13,.0f} {events / seconds:>11,.0f}"
            f" {memory.peak_gib:>9.2f}"
        )
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
