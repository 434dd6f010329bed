"""Benchmark: the real decision service on Ray Serve against the same model graph in one process.

One run starts everything itself from a registry (credit and uplift champions) and a world (the
request bodies are real applications of it):

1. the baselines a user might pick instead: the model graph in process under plain uvicorn
   (`tala_ray.serving.inprocess`, no Ray, same models and policy), in one process and with
   `--workers 2` on the same two cores (the Serve ratios are against the two workers);
2. the Serve application from `serve_configs/credit_decision.yaml` via `tala-ray serve`, once per
   ingress variant (`--ingress proxy,haproxy`: Serve's Python proxy, or HAProxy + direct ingress).

For each: single decisions at each closed-loop client count and paced at the SLO's share of
saturation (p50/p95/p99, requests/s, CPU ms per request by process), then the batch endpoint with
JSON and with Arrow IPC bodies (decisions/s); ratios against the baseline, and the `slo.yaml`
checks with the measured figures.

    .venv/bin/tala-ray demo --workdir runs/demo            # a registry and a world, if you have none
    .venv/bin/python bench/serve_decisions.py --registry runs/demo/registry --world runs/demo/holdout_world
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cpu import CpuMeter  # noqa: E402
from bench._load import Driver, LoadResult, load_result, measure_target  # noqa: E402
from bench._report import print_results, report_slo  # noqa: E402
from bench._targets import ROOT, Target, serve_target, uvicorn_target  # noqa: E402
from bench._tools import ensure_tool, run_hey_closed  # noqa: E402
from tala_ray.core.net import free_port  # noqa: E402
from tala_ray.monitoring.slo import load_slo  # noqa: E402
from tala_ray.traffic.arrow_encode import encode_payloads  # noqa: E402
from tala_ray.traffic.replay import read_world_tables, sample_payloads  # noqa: E402

CONFIG = ROOT / "serve_configs" / "credit_decision.yaml"
ARROW = "application/vnd.apache.arrow.stream"


def batch_level(
    hey: str,
    target: Target,
    body: Path,
    content_type: str,
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
    size: int,
) -> LoadResult:
    """One closed-loop level of batch requests, with CPU by process group."""
    meter = CpuMeter(target.root_pid)
    run = run_hey_closed(hey, target.url, body, content_type, headers, concurrency, seconds)
    label = f"{target.label} batch x{size} {'arrow' if content_type == ARROW else 'json'}"
    return load_result(label, concurrency, run, size, meter.stop(run.requests))


def write_bodies(world: str, batch_size: int, scratch: Path) -> dict[str, Path]:
    """Single and batch bodies (JSON and Arrow) of real applications of the world."""
    payloads = sample_payloads(read_world_tables(world), batch_size, seed=0)
    payloads = (payloads * (batch_size // len(payloads) + 1))[:batch_size]
    paths = {
        "single": scratch / "single.json",
        "batch_json": scratch / "batch.json",
        "batch_arrow": scratch / "batch.arrow",
    }
    paths["single"].write_text(json.dumps(payloads[0]))
    paths["batch_json"].write_text(json.dumps({"applications": payloads}))
    paths["batch_arrow"].write_bytes(encode_payloads(payloads))
    return paths


def serve_config(scratch: Path, registry: str, port: int, batch_size: int) -> tuple[Path, dict]:
    """The shipped config with this run's port, registry, batch limit and a scratch prediction log."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["http_options"]["port"] = port
    args = raw["applications"][0]["args"]
    args.update(
        registry_uri=registry,
        max_batch_applications=max(batch_size, args.get("max_batch_applications", 1)),
        max_body_bytes=64_000_000,
        prediction_log_uri=str(scratch / "prediction_log"),
    )
    path = scratch / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, args["policy"]


def measure(
    driver: Driver,
    hey: str,
    target: Target,
    bodies: dict[str, Path],
    levels: list[int],
    fraction: float,
    batch_size: int,
    batch_levels: list[int],
) -> tuple[list[LoadResult], LoadResult, list[LoadResult]]:
    single, half = measure_target(driver, target, bodies["single"].read_text(), levels, fraction)
    batch_target = Target(target.label, target.url + "/batch", target.root_pid)
    batch = [
        batch_level(hey, batch_target, bodies[name], content_type, driver.headers, c, driver.seconds, batch_size)
        for name, content_type in (("batch_json", "application/json"), ("batch_arrow", ARROW))
        for c in batch_levels
    ]
    return single, half, batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", required=True, help="registry with credit_pd and uplift champions")
    parser.add_argument("--world", required=True, help="a generated world: the request bodies are its applications")
    parser.add_argument(
        "--ingress", default="proxy,haproxy", help="Serve ingress variants: proxy, haproxy (comma-separated)"
    )
    parser.add_argument("--concurrency", default="1,4,16", help="closed-loop client counts for single decisions")
    parser.add_argument("--batch-concurrency", default="2,4", help="closed-loop client counts for the batch endpoint")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load level")
    parser.add_argument("--slo", type=Path, default=ROOT / "slo.yaml")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    wrk, hey = ensure_tool("wrk", False), ensure_tool("hey", False)
    if hey is None:
        sys.exit(
            "error: this benchmark needs `hey` (Debian package `hey`) for binary bodies;"
            " `bench/serve.py --install-tools` installs it"
        )
    levels = [int(c) for c in args.concurrency.split(",")]
    batch_levels = [int(c) for c in args.batch_concurrency.split(",")]
    fraction = load_slo(args.slo).latency.at_load_fraction
    api_key = secrets.token_urlsafe(24)
    print(
        f"load generators: {wrk or 'httpx'}, {hey}; {args.duration:g} s per level; cores {os.cpu_count()};"
        f" load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-decisions-") as scratch_dir:
        scratch = Path(scratch_dir)
        bodies = write_bodies(args.world, args.batch_size, scratch)
        port = free_port()
        config, policy = serve_config(scratch, args.registry, port, args.batch_size)
        baseline: dict[int, LoadResult] = {}
        if not args.skip_baseline:
            os.environ |= {"TALA_INPROCESS_REGISTRY": args.registry, "TALA_INPROCESS_POLICY": json.dumps(policy)}
            driver = Driver(wrk, hey, args.duration, {})
            for workers in (1, 2):  # one process on one core, and what a user would run on the same two cores
                label = f"in-process baseline (uvicorn --workers {workers})"
                with uvicorn_target("tala_ray.serving.inprocess:create_app", "/v1/decisions", label, workers) as target:
                    single, half, batch = measure(
                        driver, hey, target, bodies, levels, fraction, args.batch_size, batch_levels
                    )
                baseline = {r.concurrency: r for r in single}  # the ratios below: against the two workers
                print_results([*single, half, *batch], baseline)
        driver = Driver(wrk, hey, args.duration, {"Authorization": f"Bearer {api_key}"})
        for ingress in args.ingress.split(","):
            print()
            with serve_target(config, port, ingress, api_key) as target:
                single, half, batch = measure(
                    driver, hey, target, bodies, levels, fraction, args.batch_size, batch_levels
                )
            print_results([*single, half, *batch], baseline)
            report_slo(args.slo, single, half, baseline, [b for b in batch if "arrow" in b.target])


if __name__ == "__main__":
    main()
