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
when missing and running as root; without them an asyncio httpx client is used (its own CPU use
lowers the figures; paced, it counts latency from the scheduled send time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tala_ray.monitoring.slo import MeasuredFigures, all_passed, check_slo, load_slo  # noqa: E402
from tala_ray.serving.launch import HAPROXY_ENVIRONMENT  # noqa: E402

NOOP_BODY = json.dumps({"application_id": "app-1", "amount": 120.0})
PROCESS_GROUPS = [
    ("proxy", "ray::ProxyActor"),
    ("replica", "ray::ServeReplica"),
    ("haproxy", "haproxy"),
    ("controller", "ray::ServeController"),
    ("raylet+gcs", "raylet"),
    ("raylet+gcs", "gcs_server"),
]


@dataclass
class LoadResult:
    """One load level against one target."""

    target: str
    concurrency: int
    requests: int
    failed: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    items_per_request: int = 1
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    generator_cpu_ms_per_request: float = 0.0
    busy_replicas: int = 0

    @property
    def rps(self) -> float:
        return (self.requests - self.failed) / self.seconds if self.seconds else 0.0

    @property
    def items_per_s(self) -> float:
        return self.rps * self.items_per_request


# ---------------------------------------------------------------- load generators


def ensure_tool(name: str, install: bool) -> str | None:
    """Path to a Debian-packaged load tool (wrk, hey); installed with apt-get when asked and allowed (root)."""
    found = shutil.which(name)
    if found or not install or os.geteuid() != 0:
        return found
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", name], check=False, capture_output=True)
    return shutil.which(name)


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def run_wrk(
    wrk: str, url: str, body: str, headers: dict[str, str], concurrency: int, seconds: float
) -> tuple[int, int, float, list[float]]:
    """(requests, failed, seconds, [p50, p95, p99] ms) from one wrk run with one thread."""
    header_lines = "\n".join(f'wrk.headers["{k}"] = [==[{v}]==]' for k, v in headers.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(body=body, headers=header_lines))
    try:
        command = [
            wrk,
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            script.name,
            url,
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(script.name)
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", output)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    requests, duration_us, failed, p50, p95, p99 = (int(g) for g in match.groups())
    return requests, failed, duration_us / 1e6, [p50 / 1000, p95 / 1000, p99 / 1000]


def run_hey_paced(
    hey: str, url: str, body: str, headers: dict[str, str], rate: float, seconds: float, processes: int = 16
) -> tuple[int, int, float, list[float]]:
    """Paced load: `processes` hey processes, one worker each at rate/processes per second, started
    1/rate apart so arrivals are spread evenly (one hey with many workers fires them in bursts).
    Percentiles are exact, over every request (hey's CSV output). A worker waits for its previous
    response, so latencies above processes/rate seconds would be under-counted (none near the SLO)."""
    with tempfile.TemporaryDirectory() as scratch:
        body_path = Path(scratch) / "body.json"
        body_path.write_text(body)
        command = [
            hey,
            "-z",
            f"{max(1, round(seconds))}s",
            "-c",
            "1",
            "-q",
            f"{rate / processes:.4f}",
            "-m",
            "POST",
            "-T",
            "application/json",
            "-D",
            str(body_path),
            "-t",
            "10",
            "-o",
            "csv",
        ]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        running = []
        for _ in range(processes):
            running.append(
                subprocess.Popen([*command, url], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            )
            time.sleep(1.0 / rate)
        outputs = [process.communicate()[0] for process in running]
    requests, failed, percentiles = hey_csv_results(outputs)
    return requests, failed, seconds, percentiles


def hey_csv_results(outputs: list[str]) -> tuple[int, int, list[float]]:
    """(requests, failed, [p50, p95, p99] ms) over every request of hey runs made with `-o csv`."""
    latencies, failed = [], 0
    for output in outputs:
        for line in output.splitlines()[1:]:
            fields = line.split(",")
            if len(fields) < 7:
                continue
            latencies.append(float(fields[0]) * 1000)
            failed += not 200 <= int(fields[6]) < 400
    percentiles = np.percentile(latencies, [50, 95, 99]).tolist() if latencies else [float("nan")] * 3
    return len(latencies), failed, percentiles


async def _httpx_closed_loop(
    url: str, body: str, headers: dict[str, str], concurrency: int, seconds: float
) -> tuple[int, int, float, list[float]]:
    latencies: list[float] = []
    failed = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        limits=limits, timeout=10, headers={"Content-Type": "application/json", **headers}
    ) as client:

        async def worker() -> None:
            nonlocal failed
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    ok = (await client.post(url, content=body)).status_code < 400
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - started) * 1000)
                failed += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies), failed, elapsed, list(np.percentile(latencies or [0.0], [50, 95, 99]))


async def _httpx_open_loop(
    url: str, body: str, headers: dict[str, str], rate: float, seconds: float
) -> tuple[int, int, float, list[float]]:
    """Requests at a fixed arrival rate; latency counts from the scheduled send time."""
    latencies: list[float] = []
    failed = 0
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(
        limits=limits, timeout=10, headers={"Content-Type": "application/json", **headers}
    ) as client:

        async def one(scheduled: float) -> None:
            nonlocal failed
            try:
                ok = (await client.post(url, content=body)).status_code < 400
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - scheduled) * 1000)
            failed += not ok

        started = time.perf_counter()
        tasks = []
        for index in range(int(rate * seconds)):
            scheduled = started + index / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return len(latencies), failed, elapsed, list(np.percentile(latencies or [0.0], [50, 95, 99]))


# ---------------------------------------------------------------- CPU accounting


def _group(process: psutil.Process) -> str:
    try:
        text = " ".join(process.cmdline()) or process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "other"
    return next((group for group, marker in PROCESS_GROUPS if marker in text), "other")


def cpu_by_group(root_pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of every process in the tree under `root_pid`, with its group."""
    try:
        root = psutil.Process(root_pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    seen: dict[int, tuple[str, float]] = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        seen[process.pid] = (_group(process), times.user + times.system)
    return seen


def cpu_delta_ms(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for pid, (group, seconds) in after.items():
        totals[group] += (seconds - before.get(pid, (group, 0.0))[1]) * 1000
    return dict(totals)


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------- targets


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout_s: float = 180.0, require_ok: bool = False) -> None:
    """Until `url` answers (any status below 500; only 200 with `require_ok`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status = httpx.get(url, timeout=2).status_code
            if status == 200 or (status < 500 and not require_ok):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


@dataclass
class Target:
    label: str
    url: str
    root_pid: int | None = None


@contextmanager
def uvicorn_target(factory: str, path: str, label: str = "uvicorn baseline") -> Iterator[Target]:
    """A plain uvicorn + FastAPI server in one process (access log off), from an app factory."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)})
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 60)
        yield Target(label, f"http://127.0.0.1:{port}{path}", process.pid)
    finally:
        process.terminate()
        process.wait(30)


@dataclass(frozen=True)
class ServeVariant:
    """One Ray Serve configuration of the no-op app."""

    label: str
    env: dict[str, str] = field(default_factory=dict)
    style: str = "fastapi"
    replicas: str = "1"
    max_ongoing_requests: int = 64
    replica_port: bool = False  # call the replica's own direct-ingress port instead of the public one


# docs/serving-performance.md: what `tala-ray serve --haproxy` and cluster.yaml set (HAProxy, gRPC
# handles, buffered request logs, frozen GC, user code on the replica's loop; not the whole
# RAY_SERVE_THROUGHPUT_OPTIMIZED bundle, whose router-in-the-same-loop part stops the autoscaling).
RECOMMENDED_ENV = HAPROXY_ENVIRONMENT | {"BENCH_ACCESS_LOG": "0"}

NOOP_VARIANTS = [
    ServeVariant("serve default proxy"),
    ServeVariant("serve proxy, access log off", {"BENCH_ACCESS_LOG": "0"}),
    ServeVariant("serve proxy, starlette __call__", {"BENCH_ACCESS_LOG": "0"}, style="starlette"),
    ServeVariant(
        "serve proxy, throughput-optimized",
        {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0", "BENCH_ACCESS_LOG": "0"},
    ),
    ServeVariant("direct ingress (replica port)", {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1"}, replica_port=True),
    ServeVariant(
        "direct ingress, access log off",
        {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1", "BENCH_ACCESS_LOG": "0"},
        replica_port=True,
    ),
    ServeVariant(
        "direct ingress, throughput-optimized",
        {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "BENCH_ACCESS_LOG": "0"},
        replica_port=True,
    ),
    ServeVariant("haproxy + direct ingress", {"RAY_SERVE_ENABLE_HA_PROXY": "1", "BENCH_ACCESS_LOG": "0"}),
    ServeVariant(
        "haproxy, throughput-optimized",
        {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "BENCH_ACCESS_LOG": "0"},
    ),
    ServeVariant(
        "haproxy, 2 replicas",
        {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "BENCH_ACCESS_LOG": "0"},
        replicas="2",
    ),
    ServeVariant(
        "haproxy, autoscaling 1-2",
        {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "BENCH_ACCESS_LOG": "0"},
        replicas="auto",
    ),
    ServeVariant(
        "haproxy, recommended (gRPC handles, log buffer, GC freeze), autoscaling 1-2", RECOMMENDED_ENV, replicas="auto"
    ),
    ServeVariant(
        "haproxy, max_ongoing 8",
        {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "BENCH_ACCESS_LOG": "0"},
        max_ongoing_requests=8,
    ),
]


def _find_replica_port(low: int, high: int) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for port in range(low, high):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return port
            except httpx.HTTPError:
                continue
        time.sleep(1)
    raise TimeoutError(f"no direct-ingress replica answered on ports {low}-{high}")


@contextmanager
def serve_noop_target(variant: ServeVariant) -> Iterator[Target]:
    """A local Ray cluster in a child process serving the no-op app with the variant's knobs."""
    port = free_port()
    low = 32000 + (port % 200) * 100  # a private direct-ingress port range per run
    env = (
        os.environ
        | variant.env
        | {
            "PYTHONPATH": str(ROOT),
            "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(low),
            "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(low + 50),
            "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(low + 50),
            "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(low + 100),
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"/tmp/haproxy-bench-{port}/haproxy.cfg",
            "RAY_SERVE_HAPROXY_SOCKET_PATH": f"/tmp/haproxy-bench-{port}/admin.sock",
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": f"/tmp/haproxy-bench-{port}",
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"/tmp/haproxy-bench-{port}/server-state",
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        }
    )
    command = [
        sys.executable, str(ROOT / "bench" / "serve_noop.py"), "--port", str(port), "--style", variant.style,
        "--replicas", variant.replicas, "--max-ongoing-requests", str(variant.max_ongoing_requests),
    ]  # fmt: skip
    log_path = Path(tempfile.gettempdir()) / f"bench-serve-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while "READY" not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{variant.label}: the Serve app did not start; see {log_path}")
            time.sleep(0.5)
        serve_port = _find_replica_port(low, low + 50) if variant.replica_port else port
        wait_http(f"http://127.0.0.1:{serve_port}/healthz")
        yield Target(variant.label, f"http://127.0.0.1:{serve_port}/v1/decisions", process.pid)
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------- measuring


@dataclass
class Driver:
    """Runs load levels against targets with wrk (or httpx) and accounts CPU by process group."""

    wrk: str | None
    hey: str | None
    seconds: float
    headers: dict[str, str] = field(default_factory=dict)

    def closed_loop(self, target: Target, body: str, concurrency: int, items_per_request: int = 1) -> LoadResult:
        before = cpu_by_group(target.root_pid) if target.root_pid else {}
        generator_before = children_cpu_s()
        if self.wrk:
            requests, failed, elapsed, pct = run_wrk(
                self.wrk, target.url, body, self.headers, concurrency, self.seconds
            )
        else:
            requests, failed, elapsed, pct = asyncio.run(
                _httpx_closed_loop(target.url, body, self.headers, concurrency, self.seconds)
            )
        generator_ms = (children_cpu_s() - generator_before) * 1000
        after = cpu_by_group(target.root_pid) if target.root_pid else {}
        cpu = cpu_delta_ms(before, after)
        per_request = {group: ms / max(requests, 1) for group, ms in sorted(cpu.items())}
        busy = sum(
            1
            for pid, (group, sec) in after.items()
            if group == "replica" and sec - before.get(pid, (group, 0.0))[1] > 0.05
        )
        return LoadResult(
            target.label,
            concurrency,
            requests,
            failed,
            elapsed,
            *pct,
            items_per_request,
            per_request,
            generator_ms / max(requests, 1),
            busy,
        )

    def open_loop(self, target: Target, body: str, rate: float) -> LoadResult:
        if self.hey:
            requests, failed, elapsed, pct = run_hey_paced(self.hey, target.url, body, self.headers, rate, self.seconds)
        else:
            requests, failed, elapsed, pct = asyncio.run(
                _httpx_open_loop(target.url, body, self.headers, rate, self.seconds)
            )
        return LoadResult(f"{target.label} @ {rate:.0f}/s paced", 0, requests, failed, elapsed, *pct)


def print_results(results: list[LoadResult], baseline: dict[int, LoadResult]) -> None:
    header = f"{'target':42} {'conc':>4} {'req/s':>8} {'items/s':>9} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'fail':>5} {'x base':>6}  cpu ms/req by process"
    print(header)
    print("-" * len(header))
    for r in results:
        base = baseline.get(r.concurrency)
        ratio = f"{r.rps / base.rps:.2f}" if base and base.rps and r.concurrency else "-"
        cpu = " ".join(f"{g}={ms:.2f}" for g, ms in r.cpu_ms_per_request.items() if ms >= 0.01)
        print(
            f"{r.target[:42]:42} {r.concurrency or '-':>4} {r.rps:8.0f} {r.items_per_s:9.0f} {r.p50_ms:7.1f} {r.p95_ms:7.1f} "
            f"{r.p99_ms:7.1f} {r.failed:5d} {ratio:>6}  {cpu} gen={r.generator_cpu_ms_per_request:.2f}"
            + (f" busy_replicas={r.busy_replicas}" if r.busy_replicas else "")
        )


def measure_target(
    driver: Driver, target: Target, body: str, levels: list[int], slo_fraction: float
) -> tuple[list[LoadResult], LoadResult]:
    """Closed-loop levels, then open loop at `slo_fraction` of the best throughput seen."""
    driver.closed_loop(target, body, max(levels))  # warm-up, discarded
    results = [driver.closed_loop(target, body, c) for c in levels]
    saturation = max(r.rps for r in results)
    return results, driver.open_loop(target, body, max(1.0, saturation * slo_fraction))


def report_slo(
    slo_path: Path,
    single: list[LoadResult],
    half_load: LoadResult,
    baseline: dict[int, LoadResult],
    batch: list[LoadResult] | None = None,
) -> bool:
    slo = load_slo(slo_path)
    best = max(single, key=lambda r: r.rps)
    base = baseline.get(best.concurrency)
    everything = [*single, half_load, *(batch or [])]
    measured = MeasuredFigures(
        latency_ms=half_load.p99_ms,
        requests=sum(r.requests for r in everything),
        failed_requests=sum(r.failed for r in everything),
        ratio_to_baseline=best.rps / base.rps if base and base.rps else None,
        batch_decisions_per_s=max(r.items_per_s for r in batch) if batch else None,
    )
    checks = check_slo(slo, measured)
    print(f"\nSLO ({slo_path.name}) for {best.target}:")
    for check in checks:
        print("  " + check.line())
    return all_passed(checks)


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


def _pids_in_group(root_pid: int, group: str) -> list[int]:
    return [pid for pid, (name, _) in cpu_by_group(root_pid).items() if name == group]


def summarize_profile(path: Path, top: int) -> list[str]:
    """Self and inclusive sample shares by module:function from py-spy's collapsed (raw) output."""
    self_samples: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r" \(.*?/site-packages/", " (", f) for f in stack.split(";")]
        total += count
        self_samples[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [
        f"  self   {share:5.1%}  {frame}"
        for frame, share in sorted(((f, n / total) for f, n in self_samples.items()), key=lambda x: -x[1])[:top]
    ]
    lines += [
        f"  incl   {share:5.1%}  {frame}"
        for frame, share in sorted(((f, n / total) for f, n in inclusive.items()), key=lambda x: -x[1])[:top]
    ]
    return lines


def command_profile(args: argparse.Namespace, driver: Driver) -> None:
    """py-spy the proxy, HAProxy-less replica and controller of one variant under closed-loop load."""
    variant = next(v for v in NOOP_VARIANTS if v.label == args.variant)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with serve_noop_target(variant) as target, tempfile.TemporaryDirectory() as scratch:
        driver.closed_loop(target, NOOP_BODY, args.profile_concurrency)  # warm-up
        spies = []
        for group in ("proxy", "replica"):
            for pid in _pids_in_group(target.root_pid, group):
                out = Path(scratch) / f"{group}-{pid}.txt"
                command = [
                    spy,
                    "record",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "-d",
                    str(max(1, round(driver.seconds))),
                    "-p",
                    str(pid),
                    "-o",
                    str(out),
                ]
                spies.append(
                    (group, out, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                )
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
        f"load generators: {wrk or 'httpx (asyncio)'}, paced: {hey or 'httpx (asyncio)'}; {args.duration:g} s per level; cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}"
    )
    if args.mode == "noop":
        command_noop(args, driver)
    elif args.mode == "profile":
        command_profile(args, driver)
    else:
        command_endpoint(args, driver)


if __name__ == "__main__":
    main()
