"""Load levels against a target: closed loop with wrk (or the project's httpx load generator) and paced
with hey (or the same), each with the CPU it cost by process group."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench._cpu import CpuMeter, CpuUse
from bench._targets import Target
from bench._tools import RunFigures, run_hey_paced, run_wrk
from tala_ray.traffic.loadgen import LoadFigures, closed_loop, paced

HTTPX_TIMEOUT_S = 10.0
HTTPX_PACED_CONNECTIONS = 256


@dataclass
class LoadResult:
    """One load level against one target."""

    target: str
    concurrency: int
    requests: int
    failed: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    items_per_request: int = 1
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    generator_cpu_ms_per_request: float = 0.0
    busy_replicas: int = 0

    @property
    def rps(self) -> float:
        return (self.requests - self.failed) / self.seconds if self.seconds else 0.0

    @property
    def items_per_s(self) -> float:
        return self.rps * self.items_per_request


def load_result(
    label: str, concurrency: int, run: RunFigures, items_per_request: int = 1, cpu: CpuUse | None = None
) -> LoadResult:
    """A level's row: the run's figures and, when measured, its CPU by process group."""
    result = LoadResult(
        label, concurrency, run.requests, run.failed, run.seconds, *run.percentiles_ms, items_per_request
    )
    if cpu is not None:
        result.cpu_ms_per_request = cpu.ms_per_request
        result.generator_cpu_ms_per_request = cpu.generator_ms_per_request
    return result


def _run_figures(figures: LoadFigures) -> RunFigures:
    """The load generator's figures as a row; 0 ms percentiles when nothing was sent (the SLO figures reject NaN)."""
    percentiles = [figures.percentile_ms(q) if figures.latencies_ms else 0.0 for q in (50, 95, 99)]
    return RunFigures(figures.requests, figures.failed, figures.seconds, percentiles)


@dataclass
class Driver:
    """Runs load levels against targets with wrk and hey (httpx when they are None); accounts CPU by process group."""

    wrk: str | None
    hey: str | None
    seconds: float
    headers: dict[str, str] = field(default_factory=dict)

    def closed_loop(self, target: Target, body: str, concurrency: int, items_per_request: int = 1) -> LoadResult:
        meter = CpuMeter(target.root_pid)
        if self.wrk:
            run = run_wrk(self.wrk, target.url, body, self.headers, concurrency, self.seconds)
        else:
            figures = closed_loop(
                target.url, [body], self._json_headers, concurrency, self.seconds, timeout_s=HTTPX_TIMEOUT_S
            )
            run = _run_figures(figures)
        cpu = meter.stop(run.requests)
        result = load_result(target.label, concurrency, run, items_per_request, cpu)
        result.busy_replicas = cpu.busy_replicas
        return result

    def open_loop(self, target: Target, body: str, rate: float) -> LoadResult:
        if self.hey:
            run = run_hey_paced(self.hey, target.url, body, self.headers, rate, self.seconds)
        else:
            figures = paced(
                target.url,
                [body],
                self._json_headers,
                rate,
                self.seconds,
                timeout_s=HTTPX_TIMEOUT_S,
                connections=HTTPX_PACED_CONNECTIONS,
            )
            run = _run_figures(figures)
        return load_result(f"{target.label} @ {rate:.0f}/s paced", 0, run)

    @property
    def _json_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", **self.headers}


def measure_target(
    driver: Driver, target: Target, body: str, levels: list[int], slo_fraction: float
) -> tuple[list[LoadResult], LoadResult]:
    """Closed-loop levels, then open loop at `slo_fraction` of the best throughput seen."""
    driver.closed_loop(target, body, max(levels))  # warm-up, discarded
    results = [driver.closed_loop(target, body, c) for c in levels]
    saturation = max(r.rps for r in results)
    return results, driver.open_loop(target, body, max(1.0, saturation * slo_fraction))
