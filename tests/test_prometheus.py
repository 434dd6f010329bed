"""The service's metrics, scraped for real: Debian's Prometheus scrapes Ray's metrics export port on
127.0.0.1 while the decision service decides, refuses bad input and fails a model reload; it then
holds every series the Grafana dashboard (deploy/grafana/) reads, with the labels it groups by, and
every dashboard query runs on it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import ray
from decision_service import running_decision_service

from tala_ray.core.net import free_port
from tala_ray.serving.grafana import queries, series_read

pytestmark = pytest.mark.ray
DASHBOARD_FILE = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "tala-ray-decision-service.json"
GRAFANA_RANGES = {"$__rate_interval": "1m", "$__range": "10m"}  # what Grafana substitutes before it queries


@pytest.fixture(scope="module")
def service(ray_cluster, small_world, tmp_path_factory):
    with running_decision_service(small_world, tmp_path_factory.mktemp("prometheus_service")) as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(ray_cluster, tmp_path_factory) -> Iterator[str]:
    """Prometheus scraping this node's Ray metrics export port every second; yields its URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: `make test-tools` installs it (Debian's prometheus)")
    (node,) = [n for n in ray.nodes() if n["Alive"]]
    workdir = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "ray", "static_configs": [{"targets": [f"127.0.0.1:{node['MetricsExportPort']}"]}]}
        ],
    }
    (workdir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    with open(workdir / "prometheus.log", "w") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait(lambda: _ready(url), "Prometheus ready", timeout_s=60, log=workdir / "prometheus.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def wait(condition, what: str, timeout_s: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            detail = f"; log: {log.read_text()[-2000:]}" if log else ""
            raise TimeoutError(f"{what}: not after {timeout_s:.0f}s{detail}")
        time.sleep(1)


def query(url: str, expr: str) -> list[dict]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=30).json()
    assert response["status"] == "success", (expr, response)
    return response["data"]["result"]


def series(url: str) -> dict[str, list[dict]]:
    """Every ray_tala_* series Prometheus holds, by name -> their label sets."""
    response = httpx.get(f"{url}/api/v1/series", params={"match[]": '{__name__=~"ray_tala_.*"}'}, timeout=30).json()
    found: dict[str, list[dict]] = {}
    for labels in response["data"]:
        found.setdefault(labels["__name__"], []).append(labels)
    return found


def exercise(service) -> None:
    """Decisions (single and batch), refused requests, and a model reload that fails."""
    with service.client() as client:
        for body in service.bodies[:20]:
            assert client.post("/v1/decisions", json=body).status_code == 200
        assert client.post("/v1/decisions/batch", json={"applications": service.bodies}).status_code == 200
        assert client.post("/v1/decisions", json={"applicant": {}}).status_code == 422
        assert httpx.post(f"{service.url}/v1/decisions", json=service.bodies[0], timeout=30).status_code == 401
    champion = next(d for d in service.raw["applications"][0]["deployments"] if d["name"] == "CreditChampion")
    champion["user_config"] = {"registry_uri": service.registry.uri, "name": "credit_pd", "version": "999"}
    service.redeploy()  # applied in place: the replica keeps version 1 and counts the failure
    with service.client() as client:
        models = client.get("/v1/models").json()
        assert "999" in (models["credit_champion"]["load_error"] or ""), models
        assert client.post("/v1/decisions", json=service.bodies[0]).status_code == 200


def test_prometheus_scrapes_every_metric_the_dashboard_reads(service, prometheus):
    exercise(service)
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    wanted = series_read(dashboard)
    wait(lambda: wanted <= series(prometheus).keys(), f"Prometheus holding {sorted(wanted)}", timeout_s=120)

    found = series(prometheus)
    assert all(name.startswith("ray_tala_") for name in found), "Ray exports the app's metrics with a ray_ prefix"
    decisions = {(s["outcome"], s["credit_role"]) for s in found["ray_tala_decisions_total"]}
    assert {outcome for outcome, _ in decisions} <= {"approve", "decline"} and ("approve", "champion") in decisions
    errors = {(s["stage"], s["kind"]) for s in found["ray_tala_errors_total"]}
    assert {("request", "validation"), ("request", "unauthorised")} <= errors, errors
    assert {s["endpoint"] for s in found["ray_tala_decision_latency_ms_count"]} >= {"decision", "batch"}
    assert {s["stage"] for s in found["ray_tala_batch_size_bucket"]} >= {"features", "credit_champion", "uplift"}
    (failures,) = query(prometheus, "sum by (model) (ray_tala_model_load_failures_total)")
    assert float(failures["value"][1]) >= 1

    for expr in queries(dashboard):
        for variable, value in GRAFANA_RANGES.items():
            expr = expr.replace(variable, value)
        query(prometheus, expr)  # valid PromQL on the scraped data
    latency = "histogram_quantile(0.99, sum by (le, endpoint) (rate(ray_tala_decision_latency_ms_bucket[1m])))"
    wait(lambda: bool(query(prometheus, latency)), "a p99 decision latency", timeout_s=60)
