"""The serving benchmarks' own helpers: hey's CSV, py-spy summaries, CPU accounting (bench/_*.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is not an installed package

from bench._cpu import CpuMeter  # noqa: E402
from bench._profile import summarize_profile  # noqa: E402
from bench._tools import hey_csv_results  # noqa: E402

HEY_CSV = """response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset
0.0010,0.0001,0,0,0.0009,0,200,0.001
0.0020,0,0,0,0.0020,0,302,0.002
0.0030,0,0,0,0.0030,0,500,0.003
truncated,line
"""


def test_hey_csv_counts_every_request_and_fails_outside_2xx_3xx() -> None:
    requests, failed, percentiles = hey_csv_results([HEY_CSV, HEY_CSV.splitlines()[0] + "\n0.004,0,0,0,0,0,404,0"])
    assert (requests, failed) == (4, 2)
    assert percentiles[0] == pytest.approx(2.5) and percentiles[2] == pytest.approx(3.97)
    assert hey_csv_results([""])[:2] == (0, 0)


def test_profile_summary_shares_self_and_inclusive_samples(tmp_path: Path) -> None:
    raw = tmp_path / "spy.txt"
    raw.write_text(
        "main (a.py:1);handle (/x/site-packages/starlette/app.py:5) 3\nmain (a.py:1);parse (a.py:9) 1\nnoise\n"
    )
    lines = summarize_profile(raw, top=1)
    assert lines == ["  self   75.0%  handle (starlette/app.py:5)", "  incl   100.0%  main (a.py:1)"]


def test_cpu_meter_accounts_the_tree_and_the_generators_children() -> None:
    meter = CpuMeter(os.getpid())
    subprocess.run(
        [sys.executable, "-c", "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"],
        check=True,
    )
    started = time.process_time()
    while time.process_time() - started < 0.2:  # this process burns CPU too
        pass
    use = meter.stop(requests=2)
    assert use.generator_ms_per_request >= 0.3 * 1000 / 2 * 0.9, "a finished child's CPU counts as the generator's"
    assert use.ms_per_request["other"] >= 0.2 * 1000 / 2 * 0.9 and use.busy_replicas == 0
