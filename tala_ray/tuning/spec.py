"""`ExperimentSpec`: the typed form of `experiments/*.yaml`, validated with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tala_ray.core.errors import UserError
from tala_ray.core.specs import load_yaml_model
from tala_ray.models.data_spec import DataSource, SplitSpec
from tala_ray.models.metrics import CREDIT_METRIC_NAMES, HIGHER_IS_BETTER, METRIC_NAMES
from tala_ray.models.uplift_metrics import UPLIFT_METRIC_NAMES
from tala_ray.tuning.catalog import ModelFamily
from tala_ray.tuning.uplift_families import UPLIFT_KINDS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ASHASpec(_Strict):
    """Asynchronous successive halving: stops trials that trail at each rung."""

    kind: Literal["asha"]
    grace_period: int = Field(1, ge=1, description="Reports a trial always gets before it can be stopped.")
    reduction_factor: float = Field(2.0, gt=1)
    max_t: int = Field(100, ge=1, description="Most reports (epochs / boosting checkpoints) a trial gets.")


class NoScheduler(_Strict):
    """Every trial runs to the end (FIFO)."""

    kind: Literal["none"]


SchedulerSpec = Annotated[ASHASpec | NoScheduler, Field(discriminator="kind")]


class Resources(_Strict):
    cpu: float = Field(1.0, gt=0, description="CPUs per trial.")


class ExperimentSpec(_Strict):
    """One tuning experiment, end to end."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Experiment name (run directory).")
    description: str = ""
    register_as: str | None = Field(None, description="Registry model name; default: the experiment name.")
    data: DataSource
    split: SplitSpec
    model: ModelFamily
    trials: int = Field(ge=1, description="Number of sampled configurations.")
    scheduler: SchedulerSpec = Field(default_factory=lambda: NoScheduler(kind="none"))
    resources: Resources = Field(default_factory=Resources)
    metric: Literal[METRIC_NAMES] = "auc"  # type: ignore[valid-type]
    mode: Literal["max", "min"] = "max"
    seed: int = Field(0, ge=0)
    max_failures: int = Field(2, ge=0, description="Retries of a crashed trial before it counts as failed.")

    @model_validator(mode="after")
    def _mode_matches_metric(self) -> ExperimentSpec:
        target = self.data.target_column if self.data.source == "feature_table" else None
        if target is not None and target.type == "continuous" and self.model.kind not in UPLIFT_KINDS:
            raise ValueError(
                f"data.target.type: {target.column!r} is continuous; model.kind {self.model.kind} predicts a binary "
                f"default: use an uplift model.kind ({', '.join(UPLIFT_KINDS)}) or a binary target"
            )
        if (self.metric in UPLIFT_METRIC_NAMES) != (self.model.kind in UPLIFT_KINDS):
            allowed = UPLIFT_METRIC_NAMES if self.model.kind in UPLIFT_KINDS else CREDIT_METRIC_NAMES
            raise ValueError(
                f"metric: {self.metric} does not fit model.kind {self.model.kind}; use one of {list(allowed)}"
            )
        expected = "max" if HIGHER_IS_BETTER[self.metric] else "min"
        if self.mode != expected:
            raise ValueError(
                f"mode: {self.metric} is better when {'larger' if expected == 'max' else 'smaller'}; use {expected!r}"
            )
        return self

    @property
    def model_name(self) -> str:
        return self.register_as or self.name


def load_experiment_spec(path: str | Path) -> ExperimentSpec:
    """Parse and validate a YAML spec; problems raise UserError naming the file and the fields."""
    return load_yaml_model(path, ExperimentSpec, "experiment spec")


def with_data_overrides(spec: ExperimentSpec, path: str | None, world: str | None) -> ExperimentSpec:
    """The spec with `data.path` and/or `data.world` replaced (command-line overrides), re-validated."""
    data = spec.data.model_dump()
    if path:
        data["path"] = path
    if world:
        if spec.data.source != "feature_table":
            raise UserError("--world: only a feature_table experiment has a world")
        data["world"] = world
    return ExperimentSpec.model_validate(spec.model_dump() | {"data": data})
