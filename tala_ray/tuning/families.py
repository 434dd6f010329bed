"""The credit model families: their specs (the `model:` block, by `kind`) and the builder that trains them.

The uplift families live in `tala_ray/tuning/uplift_families.py`; every family is listed in
`tala_ray/tuning/catalog.py`. A builder implements `tala_ray.tuning.family.FamilyBuilder`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tala_ray.core.errors import UserError
from tala_ray.evaluation.credit_report import evaluate_credit
from tala_ray.evaluation.held_out import HeldOutEvaluation
from tala_ray.models.credit import ESTIMATORS, CreditEstimator
from tala_ray.models.metrics import binary_metrics
from tala_ray.models.training_data import PreparedData, Splits, TrainingFrame, load_training_frame
from tala_ray.tuning.family import Report
from tala_ray.tuning.space import SearchSpace

if TYPE_CHECKING:
    from tala_ray.tuning.spec import ExperimentSpec


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


@dataclass(frozen=True)
class CreditFamilyBuilder:
    """Trains a `CreditEstimator`; validation metrics: AUC, Gini, KS, Brier, log loss, calibration error."""

    family: str
    registry_kind: str = "credit"

    def prepare(self, spec: ExperimentSpec, frame: TrainingFrame | None) -> PreparedData:
        frame = frame if frame is not None else load_training_frame(spec.data)
        if not frame.is_binary:
            raise UserError(
                f"data.target.type: {frame.target_name!r} is continuous; a credit model (model.kind {self.family}) "
                "predicts a binary default: use an uplift model.kind, or a binary target"
            )
        return PreparedData(frame=frame)

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
        """The default probability of every row."""
        return model.predict_proba(frame.features)[:, 1]

    def evaluate(
        self,
        spec: ExperimentSpec,
        model: CreditEstimator,
        splits: Splits,
        prepared: PreparedData,  # noqa: ARG002 - the hook's signature; a credit model needs only the splits
    ) -> HeldOutEvaluation:
        """Test metrics, the lift over a logistic baseline, the gap to the best possible AUC; ROC, calibration."""
        return evaluate_credit(self.predict(model, splits.test), splits, spec.seed, spec.model.kind)

    def files(self, model: CreditEstimator) -> dict[str, bytes]:
        return model.to_files()


CREDIT_BUILDERS: dict[str, CreditFamilyBuilder] = {name: CreditFamilyBuilder(family=name) for name in ESTIMATORS}
