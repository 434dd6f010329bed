"""The report's figures as Prometheus metrics, in the text exposition format (a file a node exporter's
textfile collector or a push to a Pushgateway can take)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from tala_ray.monitoring.report import MonitorReport

PREFIX = "tala_monitor"


def _gauge(registry: CollectorRegistry, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
    return Gauge(f"{PREFIX}_{name}", doc, labels, registry=registry)


def metrics_text(report: MonitorReport) -> bytes:
    """Every check's state and the latest figures as exposition text."""
    registry = CollectorRegistry()
    alert = _gauge(registry, "check_alert", "1 when the check raised an alert, 0 when it passed", ("check", "model"))
    for check in report.checks:
        if check.status != "SKIP":
            alert.labels(check.name, check.model).set(int(check.status == "ALERT"))
    _gauge(registry, "alerts", "Checks in alert").set(sum(c.status == "ALERT" for c in report.checks))
    _gauge(registry, "decisions", "Decisions judged").set(report.decisions)
    outcomes = _gauge(registry, "outcomes", "Outcome records by what the feed did", ("kind",))
    for kind, count in report.outcomes.items():
        outcomes.labels(kind).set(count)
    psi = _gauge(registry, "drift_max_psi", "Largest PSI of a drifted column", ("segment", "column"))
    for row in report.drift["drifted"]:
        psi.labels(row["segment"], row["column"]).set(row["max_psi"])
    _gauge(registry, "drifted_columns", "Drifted (segment, column) pairs").set(report.drift["drifted_pairs"])
    _gauge(registry, "reference_auc", "Estimated AUC of the training reference").set(report.reference_auc)
    estimated = _gauge(registry, "estimated_auc", "AUC estimated before labels, per week", ("vintage",))
    expected = _gauge(registry, "expected_default_rate", "Default rate expected before labels", ("vintage",))
    for row in report.estimated:
        if row["estimated_auc"] is not None:
            estimated.labels(str(row["vintage"])).set(row["estimated_auc"])
        if row["expected_default_rate"] is not None:
            expected.labels(str(row["vintage"])).set(row["expected_default_rate"])
    per_vintage = {
        "realized_default_rate": ("default_rate", "Realized default rate of matured loans"),
        "predicted_default_rate": ("predicted_rate", "Predicted default rate of the same loans"),
        "realized_auc": ("auc", "Realized AUC"),
        "realized_profit_per_application_usd": ("realized_profit_per_application_usd", "Realized profit, USD"),
        "expected_profit_per_application_usd": ("expected_profit_per_application_usd", "Expected profit, USD"),
    }
    for name, (column, doc) in per_vintage.items():
        gauge = _gauge(registry, name, doc, ("vintage", "segment"))
        for row in report.realized:
            if row[column] is not None:
                gauge.labels(str(row["vintage"]), row["segment"]).set(row[column])
    if report.live_uplift is not None:
        uplift = _gauge(registry, "live_uplift", "Exploration bucket figures", ("figure",))
        for figure in ("rate", "rate_low", "rate_high", "policy_gain_usd", "gain_low", "gain_high"):
            uplift.labels(figure).set(getattr(report.live_uplift, figure))
    return generate_latest(registry)
