"""Benchmark: HTTP serving throughput and latency against a plain uvicorn + FastAPI baseline.

Two modes, both printing requests/s (and decisions/s for batch bodies), p50/p95/p99 latency,
CPU milliseconds per request by process (proxy, replica, HAProxy, ...), ratios against the
baseline measured in the same run, and the `slo.yaml` checks (PASS/FAIL):

    # the no-op investigation: every Ray Serve knob against uvicorn (docs/serving-performance.md)
    .venv/bin/python bench/serve.py noop --concurrency 1,16,64 --duration 10

    # any running endpoint, e.g. the decision service, against an in-process baseline app
    .venv/bin/python bench/serve.py endpoint --url http://127.0.0.1:8000/v1/decisions \\
        --body decision.json --header "Authorization: Bearer $TALA_API_KEY" \\
        --baseline-factory bench.serve_noop:baseline_app --baseline-path /v1/decisions \\
        [--batch-url .../v1/decisions/batch --batch-body batch.json --batch-size 100]

Load generators come from Debian and stay off the server's CPU: `wrk` (C, one thread) for the
closed-loop levels and `hey` (Go; 16 one-worker processes at rate/16, started 1/rate apart) for
the paced run at a share of saturation (the SLO's latency objective). `--install-tools` installs them with apt-get
when missing and running as root; without them the project's asyncio httpx load generator
(`tala_ray.traffic.loadgen`) is used (its own CPU use lowers the figures; paced, it counts latency
from the scheduled send time).

This file is the command line; the pieces: `_targets` (servers), `_load` (load levels), `_tools`
(wrk, hey), `_cpu` (CPU by process group), `_report` (tables, SLO checks), `_profile` (py-spy).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cpu import pids_in_group  # noqa: E402
from bench._load import Driver, LoadResult, measure_target  # noqa: E402
from bench._profile import start_py_spy, summarize_profile  # noqa: E402
from bench._report import print_results, report_slo  # noqa: E402
from bench._targets import NOOP_VARIANTS, ROOT, Target, serve_noop_target, uvicorn_target  # noqa: E402
from bench._tools import ensure_tool  # noqa: E402
from tala_ray.monitoring.slo import load_slo  # noqa: E402

NOOP_BODY = json.dumps({"application_id": "app-1", "amount": 120.0})


def command_noop(args: argparse.Namespace, driver: Driver) -> None:
    levels = [int(c) for c in args.concurrency.split(",")]
    chosen = [v for v in NOOP_VARIANTS if not args.only or any(o in v.label for o in args.only)]
    fraction = load_slo(args.slo).latency.at_load_fraction
    with uvicorn_target("bench.serve_noop:baseline_app", "/v1/decisions") as baseline_target:
        baseline_results, baseline_half = measure_target(driver, baseline_target, NOOP_BODY, levels, fraction)
    baseline = {r.concurrency: r for r in baseline_results}
    print_results([*baseline_results, baseline_half], baseline)
    for variant in chosen:
        try:
            with serve_noop_target(variant) as target:
                results, half = measure_target(driver, target, NOOP_BODY, levels, fraction)
        except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as error:
            print(f"\n{variant.label}: failed: {error}")
            continue
        print()
        print_results([*results, half], baseline)
        report_slo(args.slo, results, half, baseline)


def command_profile(args: argparse.Namespace, driver: Driver) -> None:
    """py-spy the proxy and the replica of one variant under closed-loop load."""
    variant = next(v for v in NOOP_VARIANTS if v.label == args.variant)
    with serve_noop_target(variant) as target, tempfile.TemporaryDirectory() as scratch:
        driver.closed_loop(target, NOOP_BODY, args.profile_concurrency)  # warm-up
        spies = []
        for group in ("proxy", "replica"):
            for pid in pids_in_group(target.root_pid, group):
                out = Path(scratch) / f"{group}-{pid}.txt"
                spies.append((group, out, start_py_spy(pid, driver.seconds, out)))
        result = driver.closed_loop(target, NOOP_BODY, args.profile_concurrency)
        for _, _, process in spies:
            process.wait(60)
        print_results([result], {})
        for group, out, _ in spies:
            if out.exists():
                print(f"\n{variant.label}: {group} ({out.name}), share of samples:")
                print("\n".join(summarize_profile(out, args.top)))


def command_endpoint(args: argparse.Namespace, driver: Driver) -> None:
    levels = [int(c) for c in args.concurrency.split(",")]
    fraction = load_slo(args.slo).latency.at_load_fraction
    body = Path(args.body).read_text()
    baseline: dict[int, LoadResult] = {}
    if args.baseline_factory:
        with uvicorn_target(args.baseline_factory, args.baseline_path) as baseline_target:
            baseline_results, baseline_half = measure_target(driver, baseline_target, body, levels, fraction)
        baseline = {r.concurrency: r for r in baseline_results}
        print_results([*baseline_results, baseline_half], baseline)
        print()
    target = Target(args.label, args.url, args.server_pid)
    results, half = measure_target(driver, target, body, levels, fraction)
    batch: list[LoadResult] = []
    if args.batch_url:
        batch_target = Target(f"{args.label} batch x{args.batch_size}", args.batch_url, args.server_pid)
        batch = [
            driver.closed_loop(batch_target, Path(args.batch_body).read_text(), c, args.batch_size) for c in levels
        ]
    print_results([*results, half, *batch], baseline)
    passed = report_slo(args.slo, results, half, baseline, batch)
    sys.exit(0 if passed or not args.fail_on_slo else 1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,16,64", help="closed-loop client counts, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load level")
    parser.add_argument("--slo", type=Path, default=ROOT / "slo.yaml")
    parser.add_argument(
        "--install-tools", action="store_true", help="apt-get install wrk and hey when missing (root only)"
    )
    parser.add_argument("--httpx", action="store_true", help="use the asyncio httpx client even when wrk is there")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable (e.g. the API key)")
    sub = parser.add_subparsers(dest="mode", required=True)
    noop = sub.add_parser("noop", help="the no-op app under every Ray Serve knob, against uvicorn")
    noop.add_argument("--only", action="append", help="run only variants whose label contains this (repeatable)")
    profile = sub.add_parser("profile", help="py-spy the proxy and replica of one no-op variant under load")
    profile.add_argument("--variant", default="serve default proxy", choices=[v.label for v in NOOP_VARIANTS])
    profile.add_argument("--profile-concurrency", type=int, default=16)
    profile.add_argument("--top", type=int, default=12)
    endpoint = sub.add_parser("endpoint", help="drive a running endpoint, against an in-process uvicorn baseline")
    endpoint.add_argument("--url", required=True)
    endpoint.add_argument("--body", required=True, help="JSON file with one request body")
    endpoint.add_argument("--label", default="endpoint")
    endpoint.add_argument("--server-pid", type=int, help="root pid of the server's processes (CPU accounting)")
    endpoint.add_argument("--baseline-factory", help="module:function returning the ASGI app for uvicorn")
    endpoint.add_argument("--baseline-path", default="/v1/decisions")
    endpoint.add_argument("--batch-url")
    endpoint.add_argument("--batch-body")
    endpoint.add_argument("--batch-size", type=int, default=1, help="applications per batch body (for decisions/s)")
    endpoint.add_argument("--fail-on-slo", action="store_true", help="exit 1 when an objective fails")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    wrk = None if args.httpx else ensure_tool("wrk", args.install_tools)
    hey = None if args.httpx else ensure_tool("hey", args.install_tools)
    headers = dict(h.split(":", 1) for h in args.header)
    driver = Driver(wrk, hey, args.duration, {k.strip(): v.strip() for k, v in headers.items()})
    print(
        f"load generators: {wrk or 'httpx (asyncio)'}, paced: {hey or 'httpx (asyncio)'}; {args.duration:g} s per"
        f" level; cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}"
    )
    if args.mode == "noop":
        command_noop(args, driver)
    elif args.mode == "profile":
        command_profile(args, driver)
    else:
        command_endpoint(args, driver)


if __name__ == "__main__":
    main()
