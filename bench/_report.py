"""What the serving benchmarks print: one row a load level, ratios against the baseline, the `slo.yaml` checks."""

from __future__ import annotations

from pathlib import Path

from bench._load import LoadResult
from tala_ray.monitoring.slo import MeasuredFigures, all_passed, check_slo, load_slo


def print_results(results: list[LoadResult], baseline: dict[int, LoadResult]) -> None:
    """A table of the levels; `x base` is requests/s against the baseline at the same concurrency."""
    header = (
        f"{'target':42} {'conc':>4} {'req/s':>8} {'items/s':>9} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"
        f" {'fail':>5} {'x base':>6}  cpu ms/req by process"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        base = baseline.get(r.concurrency)
        ratio = f"{r.rps / base.rps:.2f}" if base and base.rps and r.concurrency else "-"
        cpu = " ".join(f"{g}={ms:.2f}" for g, ms in r.cpu_ms_per_request.items() if ms >= 0.01)
        print(
            f"{r.target[:42]:42} {r.concurrency or '-':>4} {r.rps:8.0f} {r.items_per_s:9.0f} {r.p50_ms:7.1f}"
            f" {r.p95_ms:7.1f} {r.p99_ms:7.1f} {r.failed:5d} {ratio:>6}  {cpu} gen={r.generator_cpu_ms_per_request:.2f}"
            + (f" busy_replicas={r.busy_replicas}" if r.busy_replicas else "")
        )


def report_slo(
    slo_path: Path,
    single: list[LoadResult],
    half_load: LoadResult,
    baseline: dict[int, LoadResult],
    batch: list[LoadResult] | None = None,
) -> bool:
    """Print the `slo.yaml` checks of the best single-request level, the paced run and the batch levels."""
    slo = load_slo(slo_path)
    best = max(single, key=lambda r: r.rps)
    base = baseline.get(best.concurrency)
    everything = [*single, half_load, *(batch or [])]
    measured = MeasuredFigures(
        latency_ms=half_load.p99_ms,
        requests=sum(r.requests for r in everything),
        failed_requests=sum(r.failed for r in everything),
        ratio_to_baseline=best.rps / base.rps if base and base.rps else None,
        batch_decisions_per_s=max(r.items_per_s for r in batch) if batch else None,
    )
    checks = check_slo(slo, measured)
    print(f"\nSLO ({slo_path.name}) for {best.target}:")
    for check in checks:
        print("  " + check.line())
    return all_passed(checks)
