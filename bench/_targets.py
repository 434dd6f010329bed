"""The servers the serving benchmarks drive, each started as a child process tree (its CPU is
accounted by process group): a plain uvicorn app, the no-op app under a Ray Serve variant, and
`tala-ray serve` with a config."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tala_ray.core.net import free_port
from tala_ray.serving.launch import HAPROXY_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Target:
    """A URL to load, and the root pid of the processes serving it (None: not accounted)."""

    label: str
    url: str
    root_pid: int | None = None


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


@contextmanager
def uvicorn_target(factory: str, path: str, label: str = "uvicorn baseline", workers: int = 1) -> Iterator[Target]:
    """A plain uvicorn + FastAPI server (access log off) from an app factory: one process, or `workers`
    worker processes under uvicorn's supervisor (sharing the port, as `uvicorn --workers N`)."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--log-level", "warning", *(["--workers", str(workers)] if workers > 1 else []),
    ]  # fmt: skip
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

_HAPROXY_FAST = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "BENCH_ACCESS_LOG": "0"}
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
    ServeVariant("haproxy, throughput-optimized", _HAPROXY_FAST),
    ServeVariant("haproxy, 2 replicas", _HAPROXY_FAST, replicas="2"),
    ServeVariant("haproxy, autoscaling 1-2", _HAPROXY_FAST, replicas="auto"),
    ServeVariant(
        "haproxy, recommended (gRPC handles, log buffer, GC freeze), autoscaling 1-2", RECOMMENDED_ENV, replicas="auto"
    ),
    ServeVariant("haproxy, max_ongoing 8", _HAPROXY_FAST, max_ongoing_requests=8),
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
    haproxy_dir = f"/tmp/haproxy-bench-{port}"
    env = (
        os.environ
        | variant.env
        | {
            "PYTHONPATH": str(ROOT),
            "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(low),
            "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(low + 50),
            "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(low + 50),
            "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(low + 100),
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{haproxy_dir}/haproxy.cfg",
            "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{haproxy_dir}/admin.sock",
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": haproxy_dir,
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{haproxy_dir}/server-state",
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


@contextmanager
def serve_target(config: Path, port: int, ingress: str, api_key: str) -> Iterator[Target]:
    """`tala-ray serve` on its own local Ray cluster (ingress `proxy` or `haproxy`), its log beside the config."""
    env = os.environ | {"TALA_API_KEY": api_key}
    command = [str(Path(sys.executable).parent / "tala-ray"), "serve", str(config)] + (
        ["--haproxy"] if ingress == "haproxy" else []
    )
    with open(config.parent / f"serve-{ingress}.log", "w") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 300, require_ok=True)  # HAProxy answers before the app is up
        yield Target(f"serve ({ingress})", f"http://127.0.0.1:{port}/v1/decisions", process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
