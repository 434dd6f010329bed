"""Service level objectives (`slo.yaml`) and a pass/fail check of measured figures against them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tala_ray.core.specs import load_yaml_model


class LatencyObjective(BaseModel):
    model_config = ConfigDict(extra="forbid")

    percentile: float = Field(99, gt=0, lt=100, description="Which latency percentile the objective bounds.")
    objective_ms: float = Field(gt=0, description="That percentile must stay under this many milliseconds.")
    at_load_fraction: float = Field(0.5, gt=0, le=1, description="Measured at this share of saturation throughput.")
    ingress: list[Literal["haproxy", "proxy"]] | None = Field(
        None, description="The ingress paths it is set for; measured through another it is not applicable (None: any)."
    )


class AvailabilityObjective(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: float = Field(gt=0, le=1, description="Answered (non-5xx, no transport error) requests / all requests.")


class ThroughputObjective(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_ratio_to_baseline: float | None = Field(
        None, gt=0, description="Single-decision requests/s against the baseline."
    )
    min_batch_decisions_per_s: float | None = Field(None, gt=0, description="Decisions/s through the batch endpoint.")


class ServiceLevelObjectives(BaseModel):
    """The whole `slo.yaml`."""

    model_config = ConfigDict(extra="forbid")

    latency: LatencyObjective
    availability: AvailabilityObjective
    throughput: ThroughputObjective = Field(default_factory=ThroughputObjective)


class MeasuredFigures(BaseModel):
    """What a benchmark or the report measured; a figure left as None is reported as not measured."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float | None = Field(None, ge=0, description="The objective's percentile at the objective's load.")
    requests: int = Field(0, ge=0, description="Requests sent while measuring availability.")
    failed_requests: int = Field(0, ge=0, description="Of those, 5xx answers, transport errors and timeouts.")
    ratio_to_baseline: float | None = Field(None, ge=0)
    batch_decisions_per_s: float | None = Field(None, ge=0)
    ingress: Literal["haproxy", "proxy"] | None = Field(None, description="The ingress path measured (None: unknown).")


class SloCheck(BaseModel):
    """One objective against its measured value; `passed` is None when it was not measured."""

    model_config = ConfigDict(extra="forbid")

    name: str
    objective: str
    measured: str
    passed: bool | None
    applicable: bool = True  # False: the path measured is not one the objective is set for

    def line(self) -> str:
        verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed] if self.applicable else "N/A "
        return f"{verdict}  {self.name}: objective {self.objective}, measured {self.measured}"


def load_slo(path: str | Path = "slo.yaml") -> ServiceLevelObjectives:
    """Parse and validate an SLO file; problems raise UserError naming the file and the field."""
    return load_yaml_model(path, ServiceLevelObjectives, "slo file")


def _at_least(name: str, objective: float | None, measured: float | None, unit: str) -> SloCheck | None:
    if objective is None:
        return None
    shown = "not measured" if measured is None else f"{measured:,.2f}{unit}"
    return SloCheck(
        name=name,
        objective=f">= {objective:,.2f}{unit}",
        measured=shown,
        passed=None if measured is None else measured >= objective,
    )


def check_slo(slo: ServiceLevelObjectives, measured: MeasuredFigures) -> list[SloCheck]:
    """Every objective of `slo` against `measured`, in file order."""
    latency = slo.latency
    latency_name = f"p{latency.percentile:g} latency at {latency.at_load_fraction:.0%} of saturation"
    applies = latency.ingress is None or measured.ingress is None or measured.ingress in latency.ingress
    shown = "not measured" if measured.latency_ms is None else f"{measured.latency_ms:.1f} ms"
    if not applies:
        shown += f" through {measured.ingress}: not applicable to this path (set for {' or '.join(latency.ingress)})"
    checks = [
        SloCheck(
            name=latency_name,
            objective=f"< {latency.objective_ms:g} ms",
            measured=shown,
            passed=None if measured.latency_ms is None or not applies else measured.latency_ms < latency.objective_ms,
            applicable=applies,
        )
    ]
    answered = None if measured.requests == 0 else 1 - measured.failed_requests / measured.requests
    shown = (
        "not measured"
        if answered is None
        else f"{answered:.4%} ({measured.failed_requests} of {measured.requests:,} failed)"
    )
    checks.append(
        SloCheck(
            name="availability",
            objective=f">= {slo.availability.target:.2%}",
            measured=shown,
            passed=None if answered is None else answered >= slo.availability.target,
        )
    )
    throughput = slo.throughput
    optional = [
        _at_least(
            "single-decision throughput / baseline", throughput.min_ratio_to_baseline, measured.ratio_to_baseline, "x"
        ),
        _at_least("batch decisions/s", throughput.min_batch_decisions_per_s, measured.batch_decisions_per_s, "/s"),
    ]
    return checks + [c for c in optional if c is not None]


def all_passed(checks: list[SloCheck]) -> bool:
    """True when every measured objective passed (objectives not measured do not count)."""
    return all(c.passed is not False for c in checks)
