"""The Grafana dashboard (deploy/grafana/, built by tala_ray.serving.grafana) reads exactly the metrics
the service exports, under the names and labels Ray exports them with."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ray.util.metrics import Counter, Histogram

from tala_ray.serving.grafana import dashboard_json, queries, series_read
from tala_ray.serving.metrics import serving_metrics

DASHBOARD_FILE = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "tala-ray-decision-service.json"
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def exported_series() -> dict[str, tuple[str, ...]]:
    """Every series name Ray's Prometheus endpoint has for `ServingMetrics` -> the labels it carries.
    Written out here from Ray's naming rules (not from the dashboard module) so the two are checked
    against each other; tests/test_prometheus.py checks these rules against a real scrape."""
    series: dict[str, tuple[str, ...]] = {}
    for metric in vars(serving_metrics()).values():
        name, labels = f"ray_{metric.info['name']}", tuple(metric.info["tag_keys"])
        if isinstance(metric, Counter):
            series[f"{name}_total"] = labels
        elif isinstance(metric, Histogram):
            series |= {name + suffix: labels + (("le",) if suffix == "_bucket" else ()) for suffix in HISTOGRAM_SERIES}
    return series


def test_the_committed_dashboard_is_the_one_the_code_builds():
    assert DASHBOARD_FILE.read_text() == dashboard_json(), "run `make grafana` and commit the file"


def test_every_query_reads_exported_series_with_their_own_labels():
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    exported = exported_series()
    assert series_read(dashboard) <= exported.keys(), series_read(dashboard) - exported.keys()
    for expr in queries(dashboard):
        names = set(re.findall(r"\b(ray_[a-z0-9_]+)\b", expr))
        allowed = set().union(*(exported[name] for name in names))
        grouped = {label.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for label in group.split(",")}
        matched = set(re.findall(r"([a-z_]+)=~?\"", expr))
        assert grouped | matched <= allowed, (expr, (grouped | matched) - allowed)


def test_the_dashboard_covers_every_metric_and_the_breakdowns_the_engineers_need():
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    read = series_read(dashboard)
    for metric in vars(serving_metrics()).values():
        assert any(name.startswith(f"ray_{metric.info['name']}") for name in read), metric.info["name"]
    text = "\n".join(queries(dashboard))
    for breakdown in (
        "ray_tala_decision_latency_ms_bucket[$__rate_interval])))",  # latency ...
        "by (le, endpoint)",  # ... by endpoint
        "by (le, stage) (rate(ray_tala_batch_size_bucket",
        "by (outcome, credit_role) (rate(ray_tala_decisions_total",
        "by (stage, kind) (rate(ray_tala_errors_total",
        "increase(ray_tala_model_load_failures_total",
    ):
        assert breakdown in text, breakdown


def test_panels_sit_on_the_grid_without_overlapping_and_use_the_prometheus_variable():
    dashboard = json.loads(dashboard_json())
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        covered = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & covered, panel["title"]
        cells |= covered
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    (variable,) = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == ("datasource", "datasource", "prometheus")
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert all(t["datasource"] == "${datasource}" for panel in panels for t in panel["targets"])
