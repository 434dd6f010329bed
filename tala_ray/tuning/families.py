"""Model families: their spec (a discriminated union on `kind`) and the builder that trains them.

To add a family (the uplift families live in `tala_ray/tuning/uplift_families.py`): add its spec class to
`ModelFamily` and its builder to `FAMILY_BUILDERS`. A builder implements `FamilyBuilder`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tala_ray.models.credit import ESTIMATORS, CreditEstimator
from tala_ray.models.metrics import binary_metrics
from tala_ray.models.training_data import TrainingFrame
from tala_ray.tuning.space import SearchSpace
from tala_ray.tuning.uplift_families import (
    UPLIFT_BUILDERS,
    CausalForestFamily,
    DRLearnerFamily,
    LinearDMLFamily,
    TLearnerFamily,
    XLearnerFamily,
)

Report = Callable[[dict[str, float]], None]


class FamilySpec(BaseModel):
    """A family's `kind` and the search space over its hyperparameters (names checked against the estimator)."""

    model_config = ConfigDict(extra="forbid")
    estimator_class: ClassVar[type]

    search_space: SearchSpace = Field(min_length=1, description="Hyperparameter -> dimension or constant.")

    @model_validator(mode="after")
    def _known_hyperparameters(self) -> FamilySpec:
        known = set(inspect.signature(self.estimator_class.__init__).parameters) - {"self", "seed"}
        unknown = sorted(set(self.search_space) - known)
        if unknown:
            raise ValueError(
                f"search_space: unknown hyperparameters {unknown} for this family (known: {sorted(known)})"
            )
        return self


class LogisticFamily(FamilySpec):
    kind: Literal["logistic"]
    estimator_class: ClassVar[type] = ESTIMATORS["logistic"]


class GBMFamily(FamilySpec):
    kind: Literal["gbm"]
    estimator_class: ClassVar[type] = ESTIMATORS["gbm"]


class MLPFamily(FamilySpec):
    kind: Literal["mlp"]
    estimator_class: ClassVar[type] = ESTIMATORS["mlp"]


ModelFamily = Annotated[
    LogisticFamily
    | GBMFamily
    | MLPFamily
    | DRLearnerFamily
    | XLearnerFamily
    | TLearnerFamily
    | CausalForestFamily
    | LinearDMLFamily,
    Field(discriminator="kind"),
]


class FamilyBuilder(Protocol):
    """How the tuning runner trains, refits, evaluates and stores one family."""

    registry_kind: str

    def train_trial(
        self, params: dict[str, Any], seed: int, train: TrainingFrame, valid: TrainingFrame, report: Report
    ) -> None:
        """Fit on `train`, calling `report` with validation metrics after every epoch / checkpoint."""

    def refit(self, params: dict[str, Any], seed: int, train: TrainingFrame) -> Any:
        """The final model on the given data."""

    def predict(self, model: Any, frame: TrainingFrame) -> np.ndarray:
        """The score the metrics are computed from (default probability for credit)."""

    def evaluate(self, model: Any, frame: TrainingFrame) -> dict[str, float]:
        """Metrics on a held-out frame."""

    def files(self, model: Any) -> dict[str, bytes]:
        """The model as files in safe formats, for the registry."""


@dataclass(frozen=True)
class CreditFamilyBuilder:
    """Trains a `CreditEstimator`; validation metrics: AUC, Gini, KS, Brier, log loss, calibration error."""

    family: str
    registry_kind: str = "credit"

    def build(self, params: dict[str, Any], seed: int) -> CreditEstimator:
        return ESTIMATORS[self.family](**params, seed=seed)

    def train_trial(
        self, params: dict[str, Any], seed: int, train: TrainingFrame, valid: TrainingFrame, report: Report
    ) -> None:
        def on_progress(step: int, p_default: np.ndarray) -> None:
            report({**binary_metrics(valid.target, p_default), "step": float(step)})

        self.build(params, seed).fit(
            train.features, train.target, eval_set=(valid.features, valid.target), on_progress=on_progress
        )

    def refit(self, params: dict[str, Any], seed: int, train: TrainingFrame) -> CreditEstimator:
        return self.build(params, seed).fit(train.features, train.target)

    def predict(self, model: CreditEstimator, frame: TrainingFrame) -> np.ndarray:
        return model.predict_proba(frame.features)[:, 1]

    def evaluate(self, model: CreditEstimator, frame: TrainingFrame) -> dict[str, float]:
        return binary_metrics(frame.target, self.predict(model, frame))

    def files(self, model: CreditEstimator) -> dict[str, bytes]:
        return model.to_files()


FAMILY_BUILDERS: dict[str, FamilyBuilder] = {
    name: CreditFamilyBuilder(family=name) for name in ESTIMATORS
} | UPLIFT_BUILDERS
