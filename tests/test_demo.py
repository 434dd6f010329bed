"""The main job end to end on a small budget: world → features → tuning → Serve → HTTP → report;
and its terminal output: one display a stage, the report, and everything else in a log file."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tala_ray.core.net import free_port
from tala_ray.jobs.console import Console, output_to_file
from tala_ray.jobs.demo import STAGES, DemoOptions, render_report, run_demo

RAY_LOG_LINE = re.compile(r"\(pid=|\b(INFO|WARNING|ERROR)\b|ServeController|raylet|Trial ")


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
    out = io.StringIO()
    report = run_demo(options, out=out)
    text = out.getvalue()
    lines = text.splitlines()

    # Ray already runs in this process without the HAProxy variables: said in one line, before anything starts
    assert lines[0].startswith("note: serving through Serve's Python proxy") and "fresh process" in lines[0]
    stage_lines = [line for line in lines if re.match(r"\[\d+/\d+\] ", line)]
    assert [line.split("]")[0] for line in stage_lines] == [f"[{i}/{len(STAGES)}" for i in range(1, len(STAGES) + 1)]
    assert text.endswith(render_report(report)), "the report comes last"
    assert len(lines) < 80 and "\r" not in text and "\x1b" not in text, "plain lines off a terminal"
    assert not [line for line in lines if RAY_LOG_LINE.search(line)], "no log line of Ray, Serve or Tune"
    demo_log = Path(report["logs"]["demo"])
    assert demo_log.stat().st_size > 0 and Path(report["logs"]["ray"]).is_dir(), "the logs went to files"
    assert str(demo_log) in text and report["logs"]["ray"] in text, "the report says where the logs are"

    assert 0.6 < report["credit"]["test_metrics"]["auc"] <= report["credit"]["best_possible_auc"] + 0.05
    strategies = {s["strategy"]: s["profit_per_application"] for s in report["holdout"]["strategies"]}
    assert strategies["oracle (true PD and uplift)"] > strategies["approve all, no intervention"]
    for endpoint in ("single", "paced", "batch"):
        figures = report["serving"][endpoint]
        assert figures["requests"] > 0 and figures["failed"] == 0, figures
    checks = {check["name"]: check for check in report["serving"]["slo"]}
    assert checks["availability"]["passed"] is True and "0 of" in checks["availability"]["measured"]
    latency = next(check for name, check in checks.items() if name.startswith("p99 latency"))
    assert report["serving"]["ingress"] == "proxy"
    assert latency["applicable"] is False and latency["passed"] is None, "the proxy path is not judged by it"
    assert f"{report['serving']['paced']['p99_ms']:.1f} ms through proxy: not applicable" in latency["measured"]
    assert "Service level objectives" in render_report(report) and ("PASS" in render_report(report))
    written = json.loads((options.workdir / "report.json").read_text())
    assert written["credit"]["model"] == report["credit"]["model"]
    assert (options.workdir / "report.md").read_text() == render_report(report)
    assert (options.workdir / "prediction_log").is_dir(), "served decisions were logged"


def test_off_a_terminal_each_stage_is_one_line_written_as_it_starts_and_finished_when_it_ends():
    out = io.StringIO()
    console = Console(out, total_stages=3)
    with console.stage("first", total=3, unit="step") as progress:
        assert out.getvalue() == "[1/3] first ... ", "the stage shows as it starts"
        for _ in range(3):
            progress.advance()
    with console.stage("second"):
        pass
    with pytest.raises(ValueError), console.stage("third"):
        raise ValueError("broken")
    console.line("failed: see the log")
    assert out.getvalue().splitlines() == [
        "[1/3] first ... done (3/3 steps, 0s)",
        "[2/3] second ... done (0s)",
        "[3/3] third ... ",
        "failed: see the log",
    ]


def test_with_the_logs_interleaved_a_stage_ends_on_a_line_of_its_own():
    out = io.StringIO()
    console = Console(out, total_stages=1, interleaved=True)
    with console.stage("first", total=1, unit="table") as progress:
        out.write("a log line\n")
        progress.advance()
    assert out.getvalue().splitlines() == ["[1/1] first", "a log line", "      done (1/1 tables, 0s)"]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_each_stage_is_one_bar_that_stays():
    out = FakeTerminal()
    console = Console(out, total_stages=1)
    with console.stage("tuning {spec}", total=2, unit="trial") as progress:
        progress.advance(2)
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1, "one line once the stage is over"
    assert re.fullmatch(r"\[1/1\] 2/2 trials \|[█#]+\| 00:00  tuning \{spec\}", text.rstrip("\n").split("\r")[-1])
    assert "\x1b" not in text


def test_output_to_file_takes_what_python_c_and_child_processes_print(tmp_path, capfd):
    log = tmp_path / "demo.log"
    with output_to_file(log) as terminal:
        print("from python")
        os.write(1, b"from fd 1\n")
        os.write(2, b"from fd 2\n")
        subprocess.run(["echo", "from a child"], check=True, timeout=30)
        terminal.write("to the terminal\n")
    print("after")
    written = log.read_text()
    assert all(text in written for text in ("from python", "from fd 1", "from fd 2", "from a child"))
    shown = capfd.readouterr()
    assert "to the terminal" in shown.out and "after" in shown.out and "to the terminal" not in written
    assert "from" not in shown.out + shown.err
