"""SLO file: the shipped slo.yaml validates; measured figures pass or fail the right objectives."""

from __future__ import annotations

from pathlib import Path

import pytest

from tala_ray.core.errors import UserError
from tala_ray.monitoring.slo import MeasuredFigures, all_passed, check_slo, load_slo

SLO_FILE = Path(__file__).resolve().parents[1] / "slo.yaml"


def test_shipped_slo_file_matches_the_issue_goals() -> None:
    slo = load_slo(SLO_FILE)
    assert slo.latency.percentile == 99 and slo.latency.objective_ms == 50 and slo.latency.at_load_fraction == 0.5
    assert 0.99 <= slo.availability.target < 1
    assert slo.throughput.min_ratio_to_baseline == 0.5
    assert slo.throughput.min_batch_decisions_per_s == 20_000


def test_figures_within_every_objective_pass() -> None:
    slo = load_slo(SLO_FILE)
    measured = MeasuredFigures(
        latency_ms=12.0, requests=10_000, failed_requests=3, ratio_to_baseline=0.7, batch_decisions_per_s=25_000
    )
    checks = check_slo(slo, measured)
    assert [c.passed for c in checks] == [True, True, True, True]
    assert all_passed(checks)
    assert checks[0].line().startswith("PASS  p99 latency at 50% of saturation: objective < 50 ms, measured 12.0 ms")


@pytest.mark.parametrize(
    ("figures", "failing"),
    [
        ({"latency_ms": 50.0}, "p99 latency at 50% of saturation"),
        ({"failed_requests": 11}, "availability"),
        ({"ratio_to_baseline": 0.49}, "single-decision throughput / baseline"),
        ({"batch_decisions_per_s": 19_999.0}, "batch decisions/s"),
    ],
)
def test_one_missed_objective_fails_only_that_one(figures: dict, failing: str) -> None:
    good = {
        "latency_ms": 10.0,
        "requests": 10_000,
        "failed_requests": 0,
        "ratio_to_baseline": 1.0,
        "batch_decisions_per_s": 30_000.0,
    }
    checks = check_slo(load_slo(SLO_FILE), MeasuredFigures(**(good | figures)))
    assert [c.name for c in checks if c.passed is False] == [failing]
    assert not all_passed(checks)


def test_figures_not_measured_are_skipped_not_passed() -> None:
    checks = check_slo(load_slo(SLO_FILE), MeasuredFigures())
    assert [c.passed for c in checks] == [None, None, None, None]
    assert all(c.line().startswith("SKIP") for c in checks)


def test_bad_slo_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "slo.yaml"
    bad.write_text("latency: {objective_ms: -5}\navailability: {target: 0.999, typo: 1}\n")
    with pytest.raises(UserError) as error:
        load_slo(bad)
    assert "latency.objective_ms" in str(error.value) and "availability.typo" in str(error.value)
    with pytest.raises(UserError, match="cannot read"):
        load_slo(tmp_path / "missing.yaml")


def test_paced_load_sends_at_the_rate_and_times_from_the_schedule():
    """The demo's open-loop generator against a real local HTTP server that answers after 20 ms."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tala_ray.traffic.loadgen import paced

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the standard library's name
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(0.02)
            self.send_response(200 if self.path == "/ok" else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        figures = paced(f"{url}/ok", [{"a": 1}], {}, rate=40, seconds=1.0)
        assert figures.requests == 40 and figures.failed == 0
        assert min(figures.latencies_ms) >= 20
        failing = paced(f"{url}/down", [{"a": 1}], {}, rate=10, seconds=0.5)
        assert failing.failed == failing.requests == 5 and failing.status_counts == {503: 5}
    finally:
        server.shutdown()


def test_latency_through_another_ingress_is_not_applicable_rather_than_failed() -> None:
    slo = load_slo(SLO_FILE)
    assert slo.latency.ingress == ["haproxy"], "the latency objective is set for the shipped HAProxy path"
    proxy, haproxy = (
        check_slo(slo, MeasuredFigures(latency_ms=80.0, requests=10, ingress=ingress))[0]
        for ingress in ("proxy", "haproxy")
    )
    assert proxy.passed is None and proxy.applicable is False
    assert proxy.line().startswith("N/A   p99 latency") and "not applicable to this path" in proxy.line()
    assert haproxy.passed is False and haproxy.applicable and haproxy.line().startswith("FAIL")
    assert all_passed([proxy]) and not all_passed([haproxy])
