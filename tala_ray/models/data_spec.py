"""Where an experiment's training data comes from and how it is split: the `data:` and `split:` blocks of a spec."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tala_ray.data.dataset_spec import TargetType

# A feature table's cohort: the randomised experiment, the confounded history, or both.
Cohort = Literal["experiment", "historical", "all"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetColumn(_Strict):
    """A feature table's outcome column and its type (binary: 1 = default; continuous: in its units)."""

    column: str = Field(description="An outcome column of the feature table, e.g. `days_late`.")
    type: TargetType = "binary"


DEFAULT_TARGET = TargetColumn(column="defaulted", type="binary")


class FeatureTableSource(_Strict):
    """A feature table built by `tala-ray features build`; `world` enables truth-based evaluation."""

    source: Literal["feature_table"]
    path: str
    world: str | None = Field(None, description="The generated world, for the best possible AUC (evaluation only).")
    target: TargetColumn | None = Field(
        None,
        exclude_if=lambda target: target is None,
        description="The outcome to model; default: `defaulted` (binary).",
    )

    @property
    def target_column(self) -> TargetColumn:
        return self.target or DEFAULT_TARGET


class DatasetSpecSource(_Strict):
    """Any CSV/Parquet described by a dataset spec YAML (`tala_ray.data.dataset_spec.DatasetSpec`)."""

    source: Literal["dataset_spec"]
    path: str


DataSource = Annotated[FeatureTableSource | DatasetSpecSource, Field(discriminator="source")]


class _Fractions(_Strict):
    valid_fraction: float = Field(0.15, gt=0, lt=1)
    test_fraction: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _leaves_training_data(self) -> _Fractions:
        if self.valid_fraction + self.test_fraction >= 0.9:
            raise ValueError("valid_fraction + test_fraction must leave at least 10% for training")
        return self


class OutOfTimeSplit(_Fractions):
    """Train on the earliest applications, validate on the next ones, test on the latest."""

    kind: Literal["out_of_time"]


class RandomStratifiedSplit(_Fractions):
    """Random split keeping the default rate equal across parts (for data without time)."""

    kind: Literal["random_stratified"]


SplitSpec = Annotated[OutOfTimeSplit | RandomStratifiedSplit, Field(discriminator="kind")]
