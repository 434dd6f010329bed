"""Benchmark: one nightly run end to end, generate -> features -> score, each step its CLI command.

Usage: .venv/bin/python bench/book.py [--applicants 1000000] [--root /tmp/tala-bench-book]
       [--registry /tmp/tala-bench-features/score-registry-gbm] [--skip-generate]

Each step runs `tala-ray ...` in a child process (it starts its own local Ray cluster, --num-cpus
CPUs); prints the step's wall seconds, the peak resident memory of the child's process tree (the
CLI and its Ray cluster, sampled every 0.2 s) and the 1-minute load average at its start. The
world is written partitioned by applicant (`--partitioned`); the registry's champions come from
`bench/score.py` (run it once first).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PeakMemory  # noqa: E402

SERVE_CONFIG = Path(__file__).resolve().parents[1] / "serve_configs" / "credit_decision.yaml"


def run_step(name: str, args: list[str], num_cpus: int) -> None:
    load = os.getloadavg()[0]
    env = os.environ | {"TALA_NUM_CPUS": str(num_cpus)}
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "tala_ray.cli", *args], env=env, stdout=subprocess.PIPE, text=True)
    with PeakMemory(pid=child.pid) as memory:
        output, _ = child.communicate()
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{name}: exit code {child.returncode}")
    summary = output.strip().splitlines()[0] if output.strip() else ""
    print(f"{name:>9} {seconds:>8.1f} {memory.peak_gib:>9.2f} {load:>6.2f}  {summary}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applicants", type=int, default=1_000_000)
    parser.add_argument("--root", default="/tmp/tala-bench-book")
    parser.add_argument("--registry", default="/tmp/tala-bench-features/score-registry-gbm")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--skip-generate", action="store_true", help="reuse the world under --root")
    args = parser.parse_args()

    root = Path(args.root)
    world, features, scores = root / "world", root / "features", root / "scores"
    print(f"{'step':>9} {'seconds':>8} {'peak GiB':>9} {'load':>6}  output")
    if not args.skip_generate:
        command = ["data", "generate", "--applicants", str(args.applicants), "--seed", "7", "--partitioned"]
        run_step("generate", [*command, "--out", str(world), "--overwrite"], args.num_cpus)
    command = ["features", "build", "--world", str(world), "--out", str(features), "--overwrite"]
    run_step("features", command, args.num_cpus)
    command = ["score", "--features", str(features), "--out", str(scores), "--overwrite"]
    command += ["--serve-config", str(SERVE_CONFIG), "--registry-uri", args.registry]
    run_step("score", command, args.num_cpus)


if __name__ == "__main__":
    main()
