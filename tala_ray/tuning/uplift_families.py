"""Uplift model families for `tala-ray tune`: their specs, their builder, and the uplift experiment run.

An uplift experiment is an `ExperimentSpec` whose `model.kind` is one of `UPLIFT_KINDS`
(`dr_learner`, `x_learner`, `t_learner`, `causal_forest`, `linear_dml`). Its data must have a
treatment column. The spec's `model` also picks the cohort of a feature table (`experiment`,
`historical` or `all`), the overlap bounds and the economics of the policy evaluation.

Model selection uses no ground truth: each trial fits on the training split and reports, on the
validation split, EconML's `RScorer` R-score (`r_score`) and the doubly robust Qini and AUUC of
its ranking (`dr_qini`, `dr_auuc`). The winner is refitted on train + validation, evaluated once
on the test split (`tala_ray.models.uplift_report`) and registered with kind `uplift`.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tala_ray.core.errors import UserError
from tala_ray.models.training_data import TrainingFrame
from tala_ray.tuning.space import SearchSpace

if TYPE_CHECKING:
    from tala_ray.models.uplift import UpliftEstimator
    from tala_ray.models.uplift_metrics import OverlapReport
    from tala_ray.tuning.runner import ExperimentOutcome
    from tala_ray.tuning.spec import ExperimentSpec

log = logging.getLogger(__name__)
Report = Callable[[dict[str, float]], None]  # as in tala_ray.tuning.families

UPLIFT_KINDS = ("dr_learner", "x_learner", "t_learner", "causal_forest", "linear_dml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OverlapSpec(_Strict):
    """Rows whose estimated propensity falls outside [low, high] are warned about and trimmed."""

    low: float = Field(0.05, ge=0, lt=0.5)
    high: float = Field(0.95, gt=0.5, le=1)


class EconomicsSpec(_Strict):
    """Economics of the policy evaluation: a default avoided saves (fee + loss) x amount; intervening costs."""

    fee_rate_per_30_days: float = Field(0.12, gt=0, le=1)
    loss_given_default: float = Field(0.95, ge=0, le=1)
    intervention_cost_usd: float = Field(0.5, ge=0)


class UpliftFamilySpec(_Strict):
    """An uplift family: search space (names checked against the estimator), cohort, overlap, economics."""

    estimator_family: ClassVar[str]

    search_space: SearchSpace = Field(default_factory=dict, description="Hyperparameter -> dimension or constant.")
    cohort: Literal["experiment", "historical", "all"] = Field(
        "experiment", description="Feature-table cohort: the randomised experiment, the confounded history, or both."
    )
    overlap: OverlapSpec = Field(default_factory=OverlapSpec)
    economics: EconomicsSpec = Field(default_factory=EconomicsSpec)

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
    from tala_ray.models.uplift import UPLIFT_ESTIMATORS, UpliftEstimator

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


UPLIFT_FAMILY_SPECS = (DRLearnerFamily, XLearnerFamily, TLearnerFamily, CausalForestFamily, LinearDMLFamily)


def repayment(frame: TrainingFrame) -> np.ndarray:
    """The outcome the models fit: 1 = repaid, so effects are reductions in default probability."""
    return 1.0 - frame.target.astype(np.float64)


def treatment_of(frame: TrainingFrame) -> np.ndarray:
    if frame.treatment is None:
        raise UserError("data: an uplift experiment needs a treatment column")
    return frame.treatment.astype(np.int64)


class _FixedEffects:
    """Hands RScorer the effects already computed for the rows it was fitted on (in that order)."""

    def __init__(self, effects: np.ndarray) -> None:
        self.effects = effects

    def const_marginal_effect(self, X: np.ndarray) -> np.ndarray:
        if len(X) != len(self.effects):
            raise ValueError("RScorer rows differ from the scored rows")
        return self.effects.reshape(-1, 1)


def validation_scores(effect: np.ndarray, frame: TrainingFrame, seed: int) -> dict[str, float]:
    """R-score (EconML RScorer) and DR Qini / AUUC of `effect` on a held-out frame; no truth used."""
    from econml.score import RScorer

    from tala_ray.models import uplift_metrics as um
    from tala_ray.models.preprocessing import Preprocessor

    y, t = repayment(frame), treatment_of(frame)
    dense = Preprocessor.fit(frame.features).transform_dense(frame.features).astype(np.float64)
    scorer = RScorer(
        model_y=um.nuisance_lgbm(False, seed),
        model_t=um.nuisance_lgbm(True, seed),
        discrete_treatment=True,
        cv=3,
        random_state=seed,
    ).fit(y, t, X=dense)
    pseudo = um.dr_pseudo_outcomes(y, t, um.cross_fitted_nuisance(dense, y, t, seed=seed))
    return {
        "r_score": float(scorer.score(_FixedEffects(effect))),
        "dr_qini": um.qini_coefficient(effect, pseudo),
        "dr_auuc": um.auuc(effect, pseudo),
    }


@dataclass(frozen=True)
class UpliftFamilyBuilder:
    """Trains an `UpliftEstimator` on repayment; validation metrics: r_score, dr_qini, dr_auuc."""

    family: str
    registry_kind: str = "uplift"

    def build(self, params: dict[str, Any], seed: int) -> UpliftEstimator:
        from tala_ray.models.uplift import UPLIFT_ESTIMATORS

        return UPLIFT_ESTIMATORS[self.family](**params, seed=seed)

    def train_trial(
        self, params: dict[str, Any], seed: int, train: TrainingFrame, valid: TrainingFrame, report: Report
    ) -> None:
        model = self.refit(params, seed, train)
        report(self.evaluate(model, valid, seed))

    def refit(self, params: dict[str, Any], seed: int, train: TrainingFrame) -> UpliftEstimator:
        return self.build(params, seed).fit(repayment(train), treatment_of(train), X=train.features)

    def predict(self, model: UpliftEstimator, frame: TrainingFrame) -> np.ndarray:
        return model.effect(frame.features)

    def evaluate(self, model: UpliftEstimator, frame: TrainingFrame, seed: int = 0) -> dict[str, float]:
        return validation_scores(self.predict(model, frame), frame, seed)

    def files(self, model: UpliftEstimator) -> dict[str, bytes]:
        return model.to_files()


UPLIFT_BUILDERS: dict[str, UpliftFamilyBuilder] = {kind: UpliftFamilyBuilder(family=kind) for kind in UPLIFT_KINDS}


# The experiment.
def load_uplift_frame(spec: ExperimentSpec) -> TrainingFrame:
    """The experiment's rows: the chosen cohort of a feature table, or a dataset spec's data."""
    from tala_ray.models.training_data import Lineage, frame_from_feature_table, load_training_frame

    if spec.data.source != "feature_table":
        frame = load_training_frame(spec.data)
    else:
        from tala_ray.features.table import read_feature_manifest, read_feature_table

        manifest = read_feature_manifest(spec.data.path)
        table = read_feature_table(spec.data.path)
        if spec.model.cohort != "all":
            table = table[table["cohort"] == spec.model.cohort].reset_index(drop=True)
        lineage = Lineage(
            source=spec.data.path,
            feature_set_version=manifest.feature_set_version,
            data_content_hash=manifest.world_content_hash,
            world=spec.data.world,
        )
        frame = frame_from_feature_table(table, lineage)
    treatment = treatment_of(frame)
    if np.unique(treatment).size != 2:
        raise UserError(
            f"data: the treatment column needs both arms (0 and 1); found {sorted(np.unique(treatment).tolist())}"
        )
    return frame


def estimated_propensity(frame: TrainingFrame, seed: int) -> np.ndarray:
    """Cross-fitted P(treatment | features) (LightGBM); the recorded propensity is not trusted."""
    from sklearn.model_selection import cross_val_predict

    from tala_ray.models.preprocessing import Preprocessor
    from tala_ray.models.uplift_metrics import nuisance_lgbm

    dense = Preprocessor.fit(frame.features).transform_dense(frame.features)
    return cross_val_predict(nuisance_lgbm(True, seed), dense, treatment_of(frame), cv=3, method="predict_proba")[:, 1]


def trim_to_overlap(frame: TrainingFrame, spec: ExperimentSpec) -> tuple[TrainingFrame, OverlapReport, np.ndarray]:
    """Estimate propensities, warn about and drop rows outside the overlap bounds."""
    from tala_ray.models.uplift_metrics import overlap_check

    propensity = estimated_propensity(frame, spec.seed)
    overlap = overlap_check(propensity, spec.model.overlap.low, spec.model.overlap.high)
    kept = np.flatnonzero(overlap.keep)
    if kept.size < 50:
        raise UserError(
            f"model.overlap: only {kept.size} rows have propensities inside [{overlap.low}, {overlap.high}]"
        )
    return frame.take(kept), overlap, propensity


def run_uplift_experiment(
    spec: ExperimentSpec,
    registry_uri: str,
    runs_root: str,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: list[Any] | None = None,
    frame: TrainingFrame | None = None,
) -> ExperimentOutcome:
    """Load and trim the data, tune on Ray Tune, refit the best trial, evaluate it once and register it."""
    import shutil

    from tala_ray.models.training_data import combine, split_frame
    from tala_ray.models.uplift_report import register_uplift_winner
    from tala_ray.tuning.runner import ExperimentOutcome, experiment_path, tune_trials

    started = time.perf_counter()
    path = experiment_path(spec, runs_root)
    if overwrite and not resume and path.exists():
        shutil.rmtree(path)
    full = frame if frame is not None else load_uplift_frame(spec)
    trimmed, overlap, propensity = trim_to_overlap(full, spec)
    splits = split_frame(trimmed, spec.split, spec.seed)
    builder = UPLIFT_BUILDERS[spec.model.kind]
    best_params, best_valid, counts, path = tune_trials(spec, builder, splits, runs_root, resume, callbacks)
    model = builder.refit(best_params, spec.seed, combine(splits.train, splits.valid))
    manifest, report = register_uplift_winner(
        spec,
        builder,
        model,
        best_params,
        splits,
        registry_uri,
        counts,
        time.perf_counter() - started,
        overlap=overlap,
        full=full,
        trimmed=trimmed,
        estimated_propensity=propensity,
    )
    return ExperimentOutcome(
        spec=spec,
        best_params=best_params,
        best_valid=best_valid,
        test_metrics=manifest.metrics,
        trials=counts,
        model_name=manifest.name,
        version=manifest.version,
        experiment_path=str(path),
        elapsed_seconds=time.perf_counter() - started,
        report=report,
    )
