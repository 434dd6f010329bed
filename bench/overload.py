"""Overload benchmark: the decision service under 8x its saturating load sheds instead of queueing.

Starts `tala-ray serve` with `serve_configs/credit_decision.yaml` (this run's port, registry and a
scratch prediction log), measures one client (p50), the saturated throughput of single decisions
(closed loop, `--clients`), then `--factor` times as many clients, with hey (a Python probe beside
it checks that the 503s carry `Retry-After`).
The goal (issue 17): every answer within 2x the SLO's p99 objective or a fast 503 carrying
`Retry-After` (under 50 ms), and goodput (200s within 2x the objective, per second) at least 80% of
the saturated throughput. The machine's load average is printed with the figures: on a shared
2-core machine they move with the neighbours' load.

    .venv/bin/python bench/overload.py --registry runs/demo/registry --world runs/demo/holdout_world
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._targets import ROOT, serve_target  # noqa: E402
from bench._tools import ensure_tool  # noqa: E402
from bench.serve_decisions import serve_config, write_bodies  # noqa: E402
from tala_ray.core.net import free_port  # noqa: E402
from tala_ray.monitoring.slo import load_slo  # noqa: E402
from tala_ray.traffic.loadgen import LoadFigures, closed_loop  # noqa: E402

FAST_SHED_MS = 50.0
GOODPUT_RATIO = 0.8


def override_ingress(config: Path, max_ongoing: int | None, max_queued: int | None, wait_from: int | None) -> None:
    """Set the ingress's `max_ongoing_requests` / `max_queued_requests` and the batching's
    `wait_from_in_flight` in the run's config (to explore)."""
    raw = yaml.safe_load(config.read_text())
    if wait_from is not None:
        raw["applications"][0]["args"]["decision_batching"]["wait_from_in_flight"] = wait_from
    ingress = next(d for d in raw["applications"][0]["deployments"] if d["name"] == "DecisionIngress")
    if max_ongoing is not None:
        ingress["max_ongoing_requests"] = max_ongoing
    if max_queued is not None:
        ingress["max_queued_requests"] = max_queued
    config.write_text(yaml.safe_dump(raw))
    print(f"ingress: max_ongoing_requests {ingress['max_ongoing_requests']},"
          f" max_queued_requests {ingress.get('max_queued_requests', -1)},"
          f" backpressure {ingress.get('backpressure_config')}")  # fmt: skip


def hey_closed(hey: str, url: str, body: Path, headers: dict[str, str], clients: int, seconds: float) -> LoadFigures:
    """Closed loop with hey (a Go client: the Python one cannot drive 8x on 2 busy cores), every
    request's status and latency from its CSV output."""
    command = [hey, "-z", f"{max(1, round(seconds))}s", "-m", "POST", "-T", "application/json", "-D", str(body)]
    command += ["-t", "10", "-o", "csv"]
    command += [arg for name, value in headers.items() if name != "Content-Type" for arg in ("-H", f"{name}: {value}")]
    started = time.perf_counter()
    output = subprocess.run([*command, "-c", str(clients), url], check=True, capture_output=True, text=True).stdout
    figures = LoadFigures(seconds=time.perf_counter() - started)
    for line in output.splitlines()[1:]:
        fields = line.split(",")
        if len(fields) >= 7:
            status, latency_ms = int(fields[6]), float(fields[0]) * 1000
            figures.requests += 1
            figures.failed += status != 200
            figures.status_counts[status] = figures.status_counts.get(status, 0) + 1
            figures.latencies_by_status.setdefault(status, []).append(latency_ms)
    return figures


def summary(figures: LoadFigures, bound_ms: float) -> dict[str, float]:
    """Counts and percentiles by status; goodput (200s within `bound_ms`) per second."""
    row: dict[str, float] = {"requests": figures.requests, "seconds": round(figures.seconds, 1)}
    for status, latencies in sorted(figures.latencies_by_status.items()):
        row[f"n_{status}"] = len(latencies)
        row[f"p50_{status}_ms"] = round(float(np.percentile(latencies, 50)), 1)
        row[f"p99_{status}_ms"] = round(float(np.percentile(latencies, 99)), 1)
        row[f"max_{status}_ms"] = round(max(latencies), 1)
    good = sum(latency <= bound_ms for latency in figures.latencies_by_status.get(200, []))
    row["goodput_per_s"] = round(good / figures.seconds, 1) if figures.seconds else 0.0
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", required=True, help="registry with credit_pd and uplift champions")
    parser.add_argument("--world", required=True, help="a generated world: the request bodies are its applications")
    parser.add_argument("--ingress", default="haproxy", choices=["proxy", "haproxy"])
    parser.add_argument("--clients", type=int, default=16, help="closed-loop clients that saturate the service")
    parser.add_argument("--factor", type=float, default=8.0, help="overload: this many times the saturating clients")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per level")
    parser.add_argument("--max-ongoing", type=int, help="override the config's ingress max_ongoing_requests")
    parser.add_argument("--max-queued", type=int, help="override the config's ingress max_queued_requests")
    parser.add_argument("--wait-from-in-flight", type=int, help="override decision_batching.wait_from_in_flight")
    parser.add_argument("--slo", type=Path, default=ROOT / "slo.yaml")
    args = parser.parse_args()
    hey = ensure_tool("hey", False) or sys.exit("error: this benchmark needs `hey` (Debian package `hey`)")
    bound_ms = 2 * load_slo(args.slo).latency.objective_ms
    api_key = secrets.token_urlsafe(24)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    with tempfile.TemporaryDirectory(prefix="bench-overload-") as scratch_dir:
        scratch = Path(scratch_dir)
        body = write_bodies(args.world, 1, scratch)["single"]
        port = free_port()
        config, _ = serve_config(scratch, args.registry, port, 1)
        override_ingress(config, args.max_ongoing, args.max_queued, args.wait_from_in_flight)
        with serve_target(config, port, args.ingress, api_key) as target:
            hey_closed(hey, target.url, body, headers, args.clients, 5.0)  # warm-up, discarded
            lone = hey_closed(hey, target.url, body, headers, 1, 8.0)
            loads = [os.getloadavg()[0]]
            saturated = hey_closed(hey, target.url, body, headers, args.clients, args.duration)
            loads.append(os.getloadavg()[0])
            clients = round(args.clients * args.factor)
            with ThreadPoolExecutor(1) as pool:  # a Python probe beside hey: do the 503s carry Retry-After?
                probe = pool.submit(closed_loop, target.url, [body.read_text()], headers, 8, args.duration / 2)
                over = hey_closed(hey, target.url, body, headers, clients, args.duration)
            probed = probe.result()
            loads.append(os.getloadavg()[0])
    saturated_row, over_row = summary(saturated, bound_ms), summary(over, bound_ms)
    shed = over.latencies_by_status.get(503, [])
    slow_ok = sum(latency > bound_ms for latency in over.latencies_by_status.get(200, []))
    verdict = {
        "bound_ms": bound_ms,
        "overload_clients": clients,
        "every_200_within_bound": slow_ok == 0,
        "slow_200s": slow_ok,
        "other_statuses": {s: n for s, n in over.status_counts.items() if s not in (200, 503)},
        "every_503_fast": bool(shed) and max(shed) < FAST_SHED_MS,
        "probe_503s_with_retry_after": f"{probed.retry_after} of {probed.status_counts.get(503, 0)}",
        "goodput_ratio": round(
            over_row["goodput_per_s"] / max(saturated_row.get("n_200", 0) / saturated.seconds, 1e-9), 2
        ),
        "load_average_1m": [round(load, 1) for load in loads],
        "cores": os.cpu_count(),
    }
    verdict["goodput_ok"] = verdict["goodput_ratio"] >= GOODPUT_RATIO
    rows = {"one_client": summary(lone, bound_ms), "saturated": saturated_row, "overload": over_row}
    print(json.dumps({"ingress": args.ingress, **rows, **verdict}, indent=1))


if __name__ == "__main__":
    main()
