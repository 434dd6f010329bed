"""The uplift model families: their specs (the `model:` block, by `kind`) and the builder that trains them.

An uplift experiment is an `ExperimentSpec` whose `model.kind` is one of `UPLIFT_KINDS`
(`dr_learner`, `x_learner`, `t_learner`, `causal_forest`, `linear_dml`). Its data must have a
treatment column. The spec's `model` also picks the cohort of a feature table (`experiment`,
`historical` or `all`), the overlap bounds and the economics of the policy evaluation (the
serving policy's `Economics`, in the application's local currency). Several interventions: the
`intervention_costs` name the arms in treatment-code order (code 0 = none) with each arm's cost (the
serving policy's `intervention_costs`); the model is fitted on every arm and the policy evaluation
picks, per application, the arm with the highest expected profit net of its cost.

The family's `prepare` hook filters the cohort, estimates propensities and trims the rows outside
the overlap bounds. Model selection uses no ground truth: each trial fits on the training split and
reports, on the validation split, EconML's `RScorer` R-score (`r_score`) and the doubly robust Qini
and AUUC of its ranking (`dr_qini`, `dr_auuc`). The winner is refitted on train + validation,
evaluated once on the test split (`tala_ray.evaluation.uplift_report`) and registered with kind `uplift`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tala_ray.core.errors import UserError
from tala_ray.evaluation.held_out import HeldOutEvaluation
from tala_ray.evaluation.truth import world_arms
from tala_ray.evaluation.uplift_report import evaluate_uplift_model
from tala_ray.models.data_spec import Cohort
from tala_ray.models.training_data import Splits, TrainingFrame, load_training_frame
from tala_ray.models.uplift import UPLIFT_ESTIMATORS, UpliftEstimator
from tala_ray.models.uplift_validation import (
    OverlapTrimmed,
    outcome,
    require_arms,
    treatment_of,
    trim_to_overlap,
    validation_scores,
)
from tala_ray.policy.economics import Economics, InterventionCosts, arm_costs
from tala_ray.tuning.family import Report
from tala_ray.tuning.space import SearchSpace

if TYPE_CHECKING:
    from tala_ray.tuning.spec import ExperimentSpec

UPLIFT_KINDS = ("dr_learner", "x_learner", "t_learner", "causal_forest", "linear_dml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OverlapSpec(_Strict):
    """Rows whose estimated propensity falls outside [low, high] are warned about and trimmed."""

    low: float = Field(0.05, ge=0, lt=0.5)
    high: float = Field(0.95, gt=0.5, le=1)


class UpliftFamilySpec(_Strict):
    """An uplift family: search space (names checked against the estimator), cohort, overlap, economics."""

    estimator_family: ClassVar[str]

    search_space: SearchSpace = Field(default_factory=dict, description="Hyperparameter -> dimension or constant.")
    cohort: Cohort = Field(
        "experiment", description="Feature-table cohort: the randomised experiment, the confounded history, or both."
    )
    overlap: OverlapSpec = Field(default_factory=OverlapSpec)
    economics: Economics = Field(
        default_factory=Economics,
        description="The policy evaluation's economics: the serving policy's, in the application's local currency.",
    )
    intervention_costs: InterventionCosts | None = Field(
        None,
        exclude_if=lambda costs: costs is None,
        description="Several interventions: arm -> cost (local currency), arm k being treatment code k (0 = none); "
        "economics.intervention_cost is then unused. Default: the one intervention.",
    )

    def arm_costs(self) -> dict[str, float]:
        """The intervention arms (treatment codes 1, 2, ...) and their costs."""
        return arm_costs(self.economics, self.intervention_costs)

    @model_validator(mode="after")
    def _known_hyperparameters(self) -> UpliftFamilySpec:
        known = hyperparameter_names(self.estimator_family)
        unknown = sorted(set(self.search_space) - known)
        if unknown:
            raise ValueError(
                f"search_space: unknown hyperparameters {unknown} for this family (known: {sorted(known)})"
            )
        return self


def hyperparameter_names(family: str) -> set[str]:
    """Every `__init__` argument of the family's estimator and of the shared nuisance settings."""
    names: set[str] = set()
    for cls in (UPLIFT_ESTIMATORS[family], UpliftEstimator):
        names |= set(inspect.signature(cls.__init__).parameters)
    return names - {"self", "seed", "nuisance"}


class DRLearnerFamily(UpliftFamilySpec):
    kind: Literal["dr_learner"]
    estimator_family: ClassVar[str] = "dr_learner"


class XLearnerFamily(UpliftFamilySpec):
    kind: Literal["x_learner"]
    estimator_family: ClassVar[str] = "x_learner"


class TLearnerFamily(UpliftFamilySpec):
    kind: Literal["t_learner"]
    estimator_family: ClassVar[str] = "t_learner"


class CausalForestFamily(UpliftFamilySpec):
    kind: Literal["causal_forest"]
    estimator_family: ClassVar[str] = "causal_forest"


class LinearDMLFamily(UpliftFamilySpec):
    kind: Literal["linear_dml"]
    estimator_family: ClassVar[str] = "linear_dml"


@dataclass(frozen=True)
class UpliftFamilyBuilder:
    """Trains an `UpliftEstimator` on repayment; validation metrics: r_score, dr_qini, dr_auuc."""

    family: str
    registry_kind: str = "uplift"

    def prepare(self, spec: ExperimentSpec, frame: TrainingFrame | None) -> OverlapTrimmed:
        """The chosen cohort (of a feature table; a dataset spec's rows as they are), trimmed to overlap."""
        if frame is None:
            frame = load_training_frame(spec.data, spec.model.cohort)
        arms = list(spec.model.arm_costs())
        if spec.data.source == "feature_table" and spec.data.world:
            options = world_arms(spec.data.world)
            if list(options[1:]) != arms:
                raise UserError(
                    f"model.intervention_costs: arms {arms} are not the arms of world {spec.data.world!r} "
                    f"({list(options[1:])}, treatment codes 1, 2, ...)"
                )
        overlap = spec.model.overlap
        return trim_to_overlap(require_arms(frame, 1 + len(arms)), overlap.low, overlap.high, spec.seed)

    def build(self, params: dict[str, Any], seed: int) -> UpliftEstimator:
        return UPLIFT_ESTIMATORS[self.family](**params, seed=seed)

    def train_trial(
        self, params: dict[str, Any], seed: int, train: TrainingFrame, valid: TrainingFrame, report: Report
    ) -> None:
        model = self.refit(params, seed, train)
        report(validation_scores(self.predict(model, valid), valid, seed))

    def refit(self, params: dict[str, Any], seed: int, train: TrainingFrame) -> UpliftEstimator:
        return self.build(params, seed).fit(outcome(train), treatment_of(train), X=train.features)

    def predict(self, model: UpliftEstimator, frame: TrainingFrame) -> np.ndarray:
        """The effect (reduction in default probability, or change in a continuous outcome) of every row:
        one intervention's (a vector), or every arm's (rows x arms)."""
        return model.effect(frame.features) if model.n_arms_ == 2 else model.arm_effects(frame.features)

    def evaluate(
        self, spec: ExperimentSpec, model: UpliftEstimator, splits: Splits, prepared: OverlapTrimmed
    ) -> HeldOutEvaluation:
        """Average effect, Qini, segments; against the truth on a synthetic world; the policy's value."""
        cohort = spec.model.cohort if spec.data.source == "feature_table" else "dataset"
        effect = self.predict(model, splits.test)
        return evaluate_uplift_model(
            effect, splits.test, prepared, spec.model.economics, spec.seed, cohort, spec.model.arm_costs()
        )

    def files(self, model: UpliftEstimator) -> dict[str, bytes]:
        return model.to_files()


UPLIFT_BUILDERS: dict[str, UpliftFamilyBuilder] = {kind: UpliftFamilyBuilder(family=kind) for kind in UPLIFT_KINDS}
