"""The main job end to end on a small budget: world → features → tuning → Serve → HTTP → report."""

from __future__ import annotations

import json

import pytest

from tala_ray.core.net import free_port
from tala_ray.jobs.demo import DemoOptions, render_report, run_demo


@pytest.mark.ray
def test_demo_runs_end_to_end_and_reports_against_the_truth(ray_cluster, tmp_path):
    options = DemoOptions(
        workdir=tmp_path / "demo",
        applicants=3_000,
        holdout_applicants=800,
        credit_trials=1,
        uplift_trials=1,
        port=free_port(),
        traffic_seconds=2,
        concurrency=2,
        batch_size=20,
    )
    lines: list[str] = []
    report = run_demo(options, echo=lines.append)

    assert [line.split("]")[0] for line in lines[:8]] == [f"[{i}/8" for i in range(1, 9)], "progress is shown"
    assert 0.6 < report["credit"]["test_metrics"]["auc"] <= report["credit"]["best_possible_auc"] + 0.05
    strategies = {s["strategy"]: s["profit_per_application"] for s in report["holdout"]["strategies"]}
    assert strategies["oracle (true PD and uplift)"] > strategies["approve all, no intervention"]
    for endpoint in ("single", "paced", "batch"):
        figures = report["serving"][endpoint]
        assert figures["requests"] > 0 and figures["failed"] == 0, figures
    checks = {check["name"]: check for check in report["serving"]["slo"]}
    assert checks["availability"]["passed"] is True and "0 of" in checks["availability"]["measured"]
    latency = next(check for name, check in checks.items() if name.startswith("p99 latency"))
    assert latency["passed"] == (report["serving"]["paced"]["p99_ms"] < 50), (
        "the latency objective is checked against the paced run"
    )
    assert "Service level objectives" in render_report(report) and ("PASS" in render_report(report))
    written = json.loads((options.workdir / "report.json").read_text())
    assert written["credit"]["model"] == report["credit"]["model"]
    assert (options.workdir / "report.md").read_text() == render_report(report)
    assert (options.workdir / "prediction_log").is_dir(), "served decisions were logged"
