"""Benchmark: the Ray Data feature pipeline on both raw layouts against the same feature code in one process.

Usage: .venv/bin/python bench/features.py [--sizes 100000 400000] [--layouts partitioned shuffled]
       [--repeat 2] [--worlds /tmp/tala-bench-features] [--stats]

For each size, two worlds with the same bytes are generated once (reused when present):
`world-<n>` (files not declared partitioned: the pipeline shuffles by applicant) and
`world-<n>-partitioned` (`data generate --partitioned`: no shuffle). Each repetition builds the
features in fresh child processes: `engine=local` (one process, whole tables) once, then
`engine=ray` on each layout (a local cluster of --num-cpus CPUs; its start is not timed, its cold
workers are). Prints seconds, events/s, the CPU seconds of the child's process tree, its peak
resident memory (driver plus Ray's processes, sampled every 0.2 s), local/ray and the 1-minute
load average at the start of each run (the machine may be shared). A child that would leave less
than 2 GiB of the machine's memory stops itself and is reported as stopped (the one-process
engine holds every table: ~8.8 GiB at 400k). --stats prints Ray Data's `Dataset.stats()` of each
Ray build.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PeakMemory, tree_rss_bytes  # noqa: E402

MARKER = "FIGURES "
LAYOUTS = ("partitioned", "shuffled")
MEMORY_HEADROOM_GIB = 2.0  # a child stops itself when it would leave less than this of the machine's memory


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its living descendants (the Ray workers)."""
    total = 0.0
    for process in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def guard_memory(limit_gib: float) -> None:
    """Stop this process (one JSON line: aborted) once its tree's resident memory passes `limit_gib`:
    on a shared machine the kernel's OOM killer would otherwise pick some other engineer's process."""

    def watch() -> None:
        while True:
            used = tree_rss_bytes(psutil.Process()) / 2**30
            if used > limit_gib:
                print(MARKER + json.dumps({"aborted_at_gib": used}), flush=True)
                os._exit(0)
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()


def run_one(engine: str, world: str, out: str, num_cpus: int, stats: bool, memory_limit_gib: float) -> None:
    """Child process: build once with `engine`, print one JSON line of figures."""
    from tala_ray.features.build import build_feature_table

    guard_memory(memory_limit_gib)
    if stats:
        logging.basicConfig(level=logging.WARNING)
        logging.getLogger("tala_ray.features.ray_pipeline").setLevel(logging.DEBUG)
    with PeakMemory() as memory:
        if engine == "ray":
            import ray
            from ray.data import DataContext

            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            DataContext.get_current().enable_progress_bars = False
        cpu_before = tree_cpu_seconds()
        started = time.perf_counter()
        manifest = build_feature_table(world, out, engine=engine, overwrite=True)
        seconds = time.perf_counter() - started
        cpu = tree_cpu_seconds() - cpu_before
    figures = {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rows": manifest.rows_out,
        "events": manifest.rows_in["events"],
        "peak_gib": memory.peak_gib,
        "layout": manifest.layout,
        "partitions": manifest.partitions,
    }
    print(MARKER + json.dumps(figures), flush=True)


def ensure_world(root: Path, size: int, partitioned: bool) -> Path:
    world = root / (f"world-{size}-partitioned" if partitioned else f"world-{size}")
    if not (world / "manifest.json").exists():
        shutil.rmtree(world, ignore_errors=True)
        command = [sys.executable, "-m", "tala_ray.cli", "data", "generate", "--applicants", str(size)]
        command += ["--seed", "7", "--out", str(world), *(["--partitioned"] if partitioned else [])]
        subprocess.run(command, check=True, capture_output=True)
    return world


def measure(engine: str, world: Path, out: Path, num_cpus: int, stats: bool) -> dict:
    load = os.getloadavg()[0]
    limit = psutil.virtual_memory().available / 2**30 - MEMORY_HEADROOM_GIB
    command = [sys.executable, __file__, "--one", engine, "--world", str(world), "--out", str(out)]
    command += ["--num-cpus", str(num_cpus), "--memory-limit-gib", f"{limit:.1f}", *(["--stats"] if stats else [])]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    shutil.rmtree(out, ignore_errors=True)
    if stats:
        print(result.stderr, flush=True)
    line = next(line for line in result.stdout.splitlines() if line.startswith(MARKER))
    return json.loads(line[len(MARKER) :]) | {"load": load}


def print_row(size: int, label: str, f: dict, ratio: float | None) -> None:
    if "aborted_at_gib" in f:
        stopped = f"stopped at {f['aborted_at_gib']:.1f} GiB (memory guard), load {f['load']:.2f}"
        print(f"{size:>11,} {'':>11} {label:>17} {stopped}", flush=True)
        return
    ratio_text = f"{ratio:.2f}" if ratio is not None else ""
    print(
        f"{size:>11,} {f['events']:>11,} {label:>17} {f['seconds']:>8.1f} {f['events'] / f['seconds']:>10,.0f}"
        f" {f['cpu_seconds']:>7.1f} {f['peak_gib']:>9.2f} {ratio_text:>9} {f['load']:>6.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 400_000])
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--worlds", default="/tmp/tala-bench-features")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--no-local", action="store_true", help="skip the one-process engine")
    parser.add_argument("--stats", action="store_true", help="print Ray Data's stats of each Ray build")
    parser.add_argument("--one", choices=["ray", "local"], help=argparse.SUPPRESS)
    parser.add_argument("--world", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--memory-limit-gib", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.one, args.world, args.out, args.num_cpus, args.stats, args.memory_limit_gib)
        return

    root = Path(args.worlds)
    print(
        f"{'applicants':>11} {'events':>11} {'engine':>17} {'seconds':>8} {'events/s':>10} {'cpu s':>7}"
        f" {'peak GiB':>9} {'local/ray':>9} {'load':>6}"
    )
    for size in args.sizes:
        worlds = {layout: ensure_world(root, size, layout == "partitioned") for layout in args.layouts}
        for _ in range(args.repeat):
            local = None
            if not args.no_local:
                local = measure("local", worlds[args.layouts[0]], root / f"features-{size}-local", args.num_cpus, False)
                print_row(size, "local", local, None)
            for layout, world in worlds.items():
                ray = measure("ray", world, root / f"features-{size}-ray", args.num_cpus, args.stats)
                ratio = local["seconds"] / ray["seconds"] if local and "seconds" in local and "seconds" in ray else None
                print_row(size, f"ray {layout}", ray, ratio)


if __name__ == "__main__":
    main()
