"""The monitor's thresholds (`monitor.yaml`): what raises an alert, and at what error rate."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tala_ray.core.specs import load_yaml_model
from tala_ray.policy.economics import Economics


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftRule(_Rule):
    """Population drift of every feature and score against the training reference, by day and country."""

    window_days: int = Field(3, ge=1, le=90, description="Each day is judged on the decisions of this many days to it.")
    bins: int = Field(10, ge=2, le=50, description="Reference quantile bins of a numeric feature.")
    family_alpha: float = Field(
        0.01, gt=0, lt=1, description="Chance of any false drift alert in a whole report (split over every test)."
    )
    min_psi: float = Field(0.02, ge=0, description="A significant shift smaller than this PSI is not material.")
    min_rows: int = Field(200, ge=10, description="A day (window) and segment with fewer decisions is not judged.")
    by_country: bool = Field(True, description="Judge each country against its own reference too.")


class EstimatedRule(_Rule):
    """Performance estimated before labels, from calibrated PDs (confidence-based estimation)."""

    max_auc_drop: float = Field(
        0.05, gt=0, lt=1, description="Estimated AUC of a week's scored applications below the reference's by more."
    )
    min_rows: int = Field(200, ge=10, description="A week with fewer scored applications is not judged.")
    calibrate: bool = Field(True, description="Calibrate the PDs on the reference's labels first (when it has them).")


class RealizedRule(_Rule):
    """Performance once labels mature, per vintage (week of decision)."""

    confidence: float = Field(0.95, gt=0.5, lt=1, description="Level of the interval shown for each vintage.")
    family_alpha: float = Field(
        0.01, gt=0, lt=1, description="Chance of any false default-rate alert in a report (split over vintages)."
    )
    min_loans: int = Field(200, ge=10, description="A vintage (and country) with fewer matured loans is not judged.")
    max_auc_shortfall: float = Field(
        0.05, gt=0, lt=1, description="Realized AUC below the estimate for the same loans by more: concept drift."
    )
    by_country: bool = Field(True, description="Judge each country's vintages too.")


class UpliftRule(_Rule):
    """The uplift model and the intervention policy judged on the exploration bucket (randomized)."""

    weighting: Literal["qini", "autoc"] = Field("qini", description="RATE weighting of the targeting curve.")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    bootstrap: int = Field(300, ge=50, le=5000, description="Bootstrap resamples of the intervals.")
    min_rows: int = Field(300, ge=20, description="Fewer matured explored loans: not judged.")
    min_rate: float = Field(0.0, description="ALERT when the RATE interval lies wholly below this.")
    min_policy_gain_usd: float = Field(
        0.0, description="ALERT when the policy's gain over no intervention (USD a loan) lies wholly below this."
    )
    seed: int = Field(0, ge=0)


class MonitorConfig(_Rule):
    """The whole `monitor.yaml`."""

    drift: DriftRule = Field(default_factory=DriftRule)
    estimated: EstimatedRule = Field(default_factory=EstimatedRule)
    realized: RealizedRule = Field(default_factory=RealizedRule)
    uplift: UpliftRule = Field(default_factory=UpliftRule)
    economics: Economics = Field(default_factory=Economics, description="The policy's economics (realized profit).")


def load_monitor_config(path: str | Path = "monitor.yaml") -> MonitorConfig:
    """Parse and validate a monitor file; problems raise UserError naming the file and the field."""
    return load_yaml_model(path, MonitorConfig, "monitor file")
