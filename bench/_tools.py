"""External load generators from Debian that stay off the server's CPU: `wrk` (closed loop, one thread)
and `hey` (paced, or closed loop with a body file such as an Arrow stream)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np


class RunFigures(NamedTuple):
    """What one load run measured: requests, failed ones, seconds, [p50, p95, p99] ms."""

    requests: int
    failed: int
    seconds: float
    percentiles_ms: list[float]


def ensure_tool(name: str, install: bool) -> str | None:
    """Path to a Debian-packaged load tool (wrk, hey); installed with apt-get when asked and allowed (root)."""
    found = shutil.which(name)
    if found or not install or os.geteuid() != 0:
        return found
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", name], check=False, capture_output=True)
    return shutil.which(name)


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def run_wrk(wrk: str, url: str, body: str, headers: dict[str, str], concurrency: int, seconds: float) -> RunFigures:
    """One wrk run with one thread and `concurrency` connections."""
    header_lines = "\n".join(f'wrk.headers["{k}"] = [==[{v}]==]' for k, v in headers.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(body=body, headers=header_lines))
    try:
        command = [
            wrk,
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            script.name,
        ]
        output = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(script.name)
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", output)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    requests, duration_us, failed, p50, p95, p99 = (int(g) for g in match.groups())
    return RunFigures(requests, failed, duration_us / 1e6, [p50 / 1000, p95 / 1000, p99 / 1000])


def _hey_command(
    hey: str, seconds: float, content_type: str, body: Path, timeout_s: int, headers: dict[str, str]
) -> list[str]:
    command = [hey, "-z", f"{max(1, round(seconds))}s", "-m", "POST", "-T", content_type, "-D", str(body)]
    command += ["-t", str(timeout_s), "-o", "csv"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    return command


def run_hey_paced(
    hey: str, url: str, body: str, headers: dict[str, str], rate: float, seconds: float, processes: int = 16
) -> RunFigures:
    """Paced load: `processes` hey processes, one worker each at rate/processes per second, started
    1/rate apart so arrivals are spread evenly (one hey with many workers fires them in bursts).
    Percentiles are exact, over every request (hey's CSV output). A worker waits for its previous
    response, so latencies above processes/rate seconds would be under-counted (none near the SLO)."""
    with tempfile.TemporaryDirectory() as scratch:
        body_path = Path(scratch) / "body.json"
        body_path.write_text(body)
        command = _hey_command(hey, seconds, "application/json", body_path, 10, headers)
        command += ["-c", "1", "-q", f"{rate / processes:.4f}", url]
        running = []
        for _ in range(processes):
            running.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
            time.sleep(1.0 / rate)
        outputs = [process.communicate()[0] for process in running]
    requests, failed, percentiles = hey_csv_results(outputs)
    return RunFigures(requests, failed, seconds, percentiles)


def run_hey_closed(
    hey: str, url: str, body: Path, content_type: str, headers: dict[str, str], concurrency: int, seconds: float
) -> RunFigures:
    """Closed-loop load with hey and a body file (binary bodies such as Arrow streams)."""
    command = [*_hey_command(hey, seconds, content_type, body, 60, headers), "-c", str(concurrency), url]
    started = time.perf_counter()
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    requests, failed, percentiles = hey_csv_results([output])
    return RunFigures(requests, failed, time.perf_counter() - started, percentiles)


def hey_csv_results(outputs: list[str]) -> tuple[int, int, list[float]]:
    """(requests, failed, [p50, p95, p99] ms) over every request of hey runs made with `-o csv`."""
    latencies, failed = [], 0
    for output in outputs:
        for line in output.splitlines()[1:]:
            fields = line.split(",")
            if len(fields) < 7:
                continue
            latencies.append(float(fields[0]) * 1000)
            failed += not 200 <= int(fields[6]) < 400
    percentiles = np.percentile(latencies, [50, 95, 99]).tolist() if latencies else [float("nan")] * 3
    return len(latencies), failed, percentiles
