"""What an uplift model is fitted on and scored by without ground truth, and the overlap trimming before it.

The models fit repayment (1 - default) for a binary target, so their effects are reductions in default
probability; a continuous target (days late, amount repaid) as it is, so effects are treated-minus-control
changes in its units. The treatment is an arm code: 0 = no intervention, 1 .. K-1 the interventions.
Held-out scores: EconML's `RScorer` R-score (`r_score`) and the doubly robust Qini and AUUC of the
model's ranking (`dr_qini`, `dr_auuc`; with several arms, their mean over the arms). Rows whose
estimated propensity (of any arm) is outside the overlap bounds are trimmed before anything is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import cross_val_predict

from tala_ray.core.errors import UserError
from tala_ray.models import uplift_metrics as um
from tala_ray.models.preprocessing import Preprocessor
from tala_ray.models.training_data import PreparedData, TrainingFrame


def outcome(frame: TrainingFrame) -> np.ndarray:
    """The outcome the models fit: repayment (1 = repaid) for a binary target, so effects are reductions
    in default probability; a continuous target as it is (effects in its units)."""
    if frame.is_binary:
        return 1.0 - frame.target.astype(np.float64)
    return frame.target.astype(np.float64)


def treatment_of(frame: TrainingFrame) -> np.ndarray:
    if frame.treatment is None:
        raise UserError("data: an uplift experiment needs a treatment column")
    return frame.treatment.astype(np.int64)


def require_arms(frame: TrainingFrame, arms: int = 2) -> TrainingFrame:
    """The frame, if its treatment codes are exactly 0 .. arms-1 (none and every intervention arm)."""
    found = sorted(np.unique(treatment_of(frame)).tolist())
    if found != list(range(arms)):
        expected = "both arms (0 and 1)" if arms == 2 else f"every arm (codes 0 to {arms - 1}, see model.arms)"
        raise UserError(f"data: the treatment column needs {expected}; found {found}")
    return frame


class _FixedEffects:
    """Hands RScorer the effects already computed for the rows it was fitted on (in that order)."""

    def __init__(self, effects: np.ndarray) -> None:
        self.effects = effects

    def const_marginal_effect(self, X: np.ndarray) -> np.ndarray:
        if len(X) != len(self.effects):
            raise ValueError("RScorer rows differ from the scored rows")
        return self.effects.reshape(len(self.effects), -1)


def validation_scores(effect: np.ndarray, frame: TrainingFrame, seed: int) -> dict[str, float]:
    """R-score (EconML RScorer) and DR Qini / AUUC of `effect` on a held-out frame; no truth used.

    `effect`: one intervention's effect per row, or rows x arms 1 .. K-1 (then the Qini and AUUC are
    the means over the arms, each ranked by its own effect against its DR pseudo-outcomes)."""
    from econml.score import RScorer  # econml is slow to import; only tuning needs it here

    y, t = outcome(frame), treatment_of(frame)
    dense = Preprocessor.fit(frame.features).transform_dense(frame.features).astype(np.float64)
    scorer = RScorer(
        model_y=um.nuisance_lgbm(False, seed),
        model_t=um.nuisance_lgbm(True, seed),
        discrete_treatment=True,
        cv=3,
        random_state=seed,
    ).fit(y, t, X=dense)
    nuisance = um.cross_fitted_nuisance(dense, y, t, seed=seed)
    if effect.ndim == 1:
        pseudo = um.dr_pseudo_outcomes(y, t, nuisance)
        qini, auuc = um.qini_coefficient(effect, pseudo), um.auuc(effect, pseudo)
    else:
        pseudo = um.dr_arm_pseudo_outcomes(y, t, nuisance)
        arms = range(effect.shape[1])
        qini = float(np.mean([um.qini_coefficient(effect[:, k], pseudo[:, k]) for k in arms]))
        auuc = float(np.mean([um.auuc(effect[:, k], pseudo[:, k]) for k in arms]))
    return {"r_score": float(scorer.score(_FixedEffects(effect))), "dr_qini": qini, "dr_auuc": auuc}


def estimated_propensity(frame: TrainingFrame, seed: int) -> np.ndarray:
    """Cross-fitted P(arm | features) (LightGBM): of the one intervention (a vector), or rows x arms;
    the recorded propensity is not trusted."""
    dense = Preprocessor.fit(frame.features).transform_dense(frame.features)
    model = um.nuisance_lgbm(True, seed)
    probabilities = cross_val_predict(model, dense, treatment_of(frame), cv=3, method="predict_proba")
    return probabilities[:, 1] if probabilities.shape[1] == 2 else probabilities


@dataclass(frozen=True)
class OverlapTrimmed(PreparedData):
    """The rows inside the overlap bounds (`frame`), and what trimming them found."""

    full: TrainingFrame  # every row, before trimming
    overlap: um.OverlapReport
    estimated_propensity: np.ndarray  # of every row of `full` (rows x arms with several arms)


def trim_to_overlap(frame: TrainingFrame, low: float, high: float, seed: int) -> OverlapTrimmed:
    """Estimate propensities, warn about and drop rows outside [low, high] (with several arms: rows
    where some arm's propensity is below `low`, or some arm's is above `high`)."""
    propensity = estimated_propensity(frame, seed)
    overlap = um.overlap_check(propensity, low, high)
    kept = np.flatnonzero(overlap.keep)
    if kept.size < 50:
        raise UserError(
            f"model.overlap: only {kept.size} rows have propensities inside [{overlap.low}, {overlap.high}]"
        )
    return OverlapTrimmed(frame=frame.take(kept), full=frame, overlap=overlap, estimated_propensity=propensity)
