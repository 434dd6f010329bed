"""The Grafana dashboard of the decision service's own metrics, built as code with grafanalib.

`python -m tala_ray.serving.grafana OUT.json` (what `make grafana` runs) writes it; import the JSON
in Grafana with a Prometheus data source that scrapes Ray's metrics export port on every node.
Metric names come from `ServingMetrics` itself, as Ray exports them (`ray_` prefix, `_total` on
counters, `_bucket` / `_sum` / `_count` on histograms), so the dashboard cannot drift from the code.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard, GridPos, RowPanel, Stat, Target, Template, Templating, TimeSeries

from tala_ray.serving.metrics import serving_metrics

TITLE = "tala-ray decision service"
UID = "tala-ray-decisions"
DATASOURCE = "${datasource}"
RATE = "$__rate_interval"  # Grafana's rate window: at least four scrape intervals
WIDTH, HEIGHT = 12, 8  # two panels a row on Grafana's 24-column grid


def exported_names() -> dict[str, str]:
    """Each `ServingMetrics` attribute -> the name Ray's Prometheus endpoint exports it under."""
    from ray.util.metrics import Counter

    return {
        attribute: f"ray_{metric.info['name']}" + ("_total" if isinstance(metric, Counter) else "")
        for attribute, metric in vars(serving_metrics()).items()
    }


def _target(expr: str, legend: str, index: int) -> Target:
    return Target(expr=expr, legendFormat=legend, refId=chr(ord("A") + index), datasource=DATASOURCE)


def _quantiles(histogram: str, by: str, title: str, unit: str, description: str) -> TimeSeries:
    """p50 and p99 of a histogram, one line per value of the label `by`."""
    quantiles = (0.5, 0.99)
    return TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        unit=unit,
        targets=[
            _target(
                f"histogram_quantile({q}, sum by (le, {by}) (rate({histogram}_bucket[{RATE}])))",
                f"p{q * 100:g} {{{{{by}}}}}",
                i,
            )
            for i, q in enumerate(quantiles)
        ],
    )


def _rate(counter: str, by: str, title: str, unit: str, description: str) -> TimeSeries:
    """A counter's per-second rate, one line per combination of the labels `by`."""
    legend = " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(","))
    return TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        unit=unit,
        targets=[_target(f"sum by ({by}) (rate({counter}[{RATE}]))", legend, 0)],
    )


def build_dashboard() -> Dashboard:
    """Rows: requests and decisions, the model graph's batches, the uplift challenger, errors and model loads."""
    names = exported_names()
    latency, batch, model = names["decision_latency_ms"], names["batch_size"], names["model_latency_ms"]
    rows: list[tuple[str, list[TimeSeries | Stat]]] = [
        (
            "Requests and decisions",
            [
                _quantiles(latency, "endpoint", "Decision latency by endpoint", "ms", "Ingress time per request."),
                TimeSeries(
                    title="Requests by endpoint",
                    dataSource=DATASOURCE,
                    unit="reqps",
                    targets=[_target(f"sum by (endpoint) (rate({latency}_count[{RATE}]))", "{{endpoint}}", 0)],
                ),
                _rate(
                    names["decisions"],
                    "outcome, credit_role",
                    "Decisions by outcome and credit role",
                    "ops",
                    "Approvals and declines; the credit role shows the canary's share.",
                ),
                TimeSeries(
                    title="Approval share by credit role",
                    dataSource=DATASOURCE,
                    unit="percentunit",
                    targets=[
                        _target(
                            f'sum by (credit_role) (rate({names["decisions"]}{{outcome="approve"}}[{RATE}])) / '
                            f"sum by (credit_role) (rate({names['decisions']}[{RATE}]))",
                            "{{credit_role}}",
                            0,
                        )
                    ],
                ),
            ],
        ),
        (
            "Model graph",
            [
                _quantiles(
                    batch,
                    "stage",
                    "Batch size by stage",
                    "short",
                    "Items per dynamic batch: stuck at 1 under load means nothing is batched "
                    "(raise batch_wait_timeout_s a little); always at max_batch_size, raise it.",
                ),
                _quantiles(model, "stage", "Batch time by stage", "ms", "Time one batch takes in each graph step."),
            ],
        ),
        (
            "Uplift challenger",
            [
                _rate(
                    names["uplift_shadow_decisions"],
                    "change",
                    "Uplift shadow: decisions the challenger would change",
                    "ops",
                    "Each decision made again with the uplift challenger's effects: what would change "
                    "(decision, intervention, limit) or not (none).",
                ),
                TimeSeries(
                    title="Uplift shadow: share of decisions changed",
                    dataSource=DATASOURCE,
                    unit="percentunit",
                    targets=[
                        _target(
                            f'sum(rate({names["uplift_shadow_decisions"]}{{change!="none"}}[{RATE}])) / '
                            f"sum(rate({names['uplift_shadow_decisions']}[{RATE}]))",
                            "changed",
                            0,
                        )
                    ],
                ),
            ],
        ),
        (
            "Errors and model loads",
            [
                _rate(names["errors"], "stage, kind", "Errors by stage and kind", "ops", "Validation, auth, internal."),
                Stat(
                    title="Model load failures (time range)",
                    description="Reloads that failed; the old model kept serving (see GET /v1/models load_error).",
                    dataSource=DATASOURCE,
                    reduceCalc="lastNotNull",
                    targets=[
                        _target(f"sum by (model) (increase({names['model_load_failures']}[$__range]))", "{{model}}", 0)
                    ],
                ),
            ],
        ),
    ]
    panels: list = []
    y = 0
    for title, row in rows:
        panels.append(RowPanel(title=title, gridPos=GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        for index, panel in enumerate(row):
            panel.gridPos = GridPos(h=HEIGHT, w=WIDTH, x=(index % 2) * WIDTH, y=y + (index // 2) * HEIGHT)
            panels.append(panel)
        y += -(-len(row) // 2) * HEIGHT
    datasource = Template(name="datasource", label="Prometheus", query="prometheus", type="datasource")
    return Dashboard(
        title=TITLE,
        uid=UID,
        description="The decision service's own metrics (tala_ray.serving.metrics), as Ray exports them.",
        tags=["tala-ray", "ray-serve"],
        timezone="browser",
        refresh="30s",
        templating=Templating(list=[datasource]),
        panels=panels,
    ).auto_panel_ids()


def queries(dashboard: dict) -> list[str]:
    """Every PromQL expression of a dashboard's JSON model."""
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def series_read(dashboard: dict) -> set[str]:
    """The series names the dashboard's queries read (e.g. `ray_tala_batch_size_bucket`)."""
    return {name for expr in queries(dashboard) for name in re.findall(r"\b(ray_[a-z0-9_]+)\b", expr)}


def dashboard_json() -> str:
    """The dashboard as Grafana's JSON model (stable key order, so the committed file diffs cleanly)."""
    return json.dumps(build_dashboard().to_json_data(), cls=DashboardEncoder, sort_keys=True, indent=2) + "\n"


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m tala_ray.serving.grafana OUT.json")
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dashboard_json())
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
