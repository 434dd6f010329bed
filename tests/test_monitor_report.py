"""`tala-ray monitor` end to end: exit codes, the files it writes, and the HTML page in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_monitor_support import AS_OF, TRAINING_APPLICANTS, rehearse

from tala_ray.data.scenarios import LiveSpec, simulate_live_chunk
from tala_ray.monitoring.config import MonitorConfig
from tala_ray.monitoring.monitor import run_monitor
from tala_ray.monitoring.report import build_report

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium")


def _monitor(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tala_ray.cli", "monitor", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)


def _arguments(rehearsal, out: Path, *extra: str) -> list[str]:
    return [
        *("--reference", rehearsal.reference, "--log", rehearsal.log, "--outcomes", rehearsal.outcomes),
        *("--as-of", AS_OF, "--out", str(out), *extra),
    ]


@pytest.fixture(scope="module")
def wave(tmp_path_factory):
    """A betting wave rehearsed and monitored through the CLI."""
    root = tmp_path_factory.mktemp("wave")
    rehearsal = rehearse(root, "betting_wave", seed=2, live_applicants=12_000)
    result = _monitor(*_arguments(rehearsal, root / "report"))
    return rehearsal, root / "report", result


def test_alerts_exit_1_and_every_file_is_written(wave):
    _, out, result = wave
    assert result.returncode == 1, result.stderr[-2000:]
    assert re.search(r"^ALERT +feature drift: .*betting_installs", result.stdout, re.M)
    assert re.search(r"^(PASS|ALERT|SKIP) +realized default rate", result.stdout, re.M)
    report = json.loads((out / "report.json").read_text())
    assert report["headline"]["status"] == "ALERT" and report["headline"]["since"] >= "2026-07-16"
    assert {check["status"] for check in report["checks"]} >= {"ALERT", "PASS"}
    assert (
        report["outcomes"]["duplicates"] > 0 and report["outcomes"]["counted"] == report["outcomes"]["labelled_loans"]
    )
    assert report["live_uplift"]["loans"] > 300
    assert (out / "report.md").read_text().startswith("# Monitoring report")
    for plot in ("drift", "scores", "vintages", "profit", "uplift"):
        assert (out / "plots" / f"{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    families = {f.name for f in text_string_to_metric_families((out / "metrics.prom").read_text())}
    assert {"tala_monitor_check_alert", "tala_monitor_realized_default_rate", "tala_monitor_live_uplift"} <= families
    joined = pq.read_table(out / "outcomes_joined.parquet").to_pandas()
    assert joined["application_id"].is_unique and joined["known"].sum() == report["outcomes"]["counted"]


def test_before_any_outcome_the_realized_checks_wait_and_drift_still_alerts(wave):
    rehearsal, _, _ = wave
    result = run_monitor(rehearsal.log, rehearsal.reference, None, AS_OF, MonitorConfig())
    status = {check.name: check.status for check in result.checks}
    assert status["feature drift"] == "ALERT"
    assert status["realized default rate"] == status["realized AUC"] == status["policy value vs none"] == "SKIP"
    cost = build_report(result, MonitorConfig()).headline.cost
    assert cost.shortfall_usd is None and cost.expected_after_usd is not None


def test_no_alert_exits_0(tmp_path):
    rehearsal = rehearse(tmp_path, "none", seed=1, live_applicants=8_000)
    result = _monitor(*_arguments(rehearsal, tmp_path / "report"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert result.stdout.startswith("PASS: No alert")


def test_bad_input_exits_2_with_one_line(wave, tmp_path):
    rehearsal, _, _ = wave
    bad_config = tmp_path / "monitor.yaml"
    bad_config.write_text("realized:\n  min_loans: -1\n")
    cases = {
        "reference": _arguments(rehearsal, tmp_path / "a") + ["--reference", str(tmp_path / "missing.parquet")],
        "realized.min_loans": _arguments(rehearsal, tmp_path / "b", "--config", str(bad_config)),
        "as_of": [*_arguments(rehearsal, tmp_path / "c"), "--as-of", "yesterday-ish"],
    }
    for field, args in cases.items():
        result = _monitor(*args)
        assert result.returncode == 2, (field, result.stderr[-2000:])
        assert result.stderr.startswith("error: ") and field in result.stderr and "Traceback" not in result.stderr


def test_data_outcomes_releases_what_the_log_served(wave, tmp_path):
    rehearsal, _, _ = wave
    world = tmp_path / "world"
    spec = LiveSpec(
        applicants=12_000, days=rehearsal.live.days, scenario="betting_wave", onset_day=rehearsal.live.onset_day
    )
    potential = simulate_live_chunk(2, 0, TRAINING_APPLICANTS, 12_000, spec)["potential_outcomes"]
    (world / "live" / "potential_outcomes").mkdir(parents=True)
    pq.write_table(potential, world / "live" / "potential_outcomes" / "part-00000.parquet")
    out = tmp_path / "outcomes"
    command = [sys.executable, "-m", "tala_ray.cli", "data", "outcomes", "--world", str(world), "--log", rehearsal.log]
    result = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    released = pq.read_table(out).to_pandas().drop_duplicates("application_id").set_index("application_id")
    expected = (
        pq.read_table(rehearsal.outcomes).to_pandas().drop_duplicates("application_id").set_index("application_id")
    )
    assert released["defaulted"].sort_index().equals(expected["defaulted"].sort_index())
    again = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert again.returncode == 2 and "not empty" in again.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (the Makefile's test set-up adds it)")
def test_the_html_report_renders_in_headless_chromium(wave, tmp_path):
    _, out, _ = wave
    page = (out / "report.html").resolve()
    html = page.read_text()
    assert not re.search(r'(src|href)="(?!data:)', html), "self-contained: every image inlined"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    shot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1280,1400", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert 'id="alerts"' in dom and "feature drift" in dom and 'class="status-ALERT"' in dom
    import matplotlib.pyplot as plt

    pixels = plt.imread(shot)[..., :3]
    assert pixels.shape[:2] == (1400, 1280)
    assert (pixels.mean(axis=2) < 0.9).mean() > 0.05, "not blank: text, tables and plots drawn"
    alert_red = (np.abs(pixels - np.array([0xC0, 0x39, 0x2B]) / 255).max(axis=2) < 0.05).sum()
    assert alert_red > 500, "the ALERT cells and banner are drawn in red"
