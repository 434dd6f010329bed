"""What an uplift model is fitted on and scored by without ground truth, and the overlap trimming before it.

The models fit repayment (1 - default), so their effects are reductions in default probability.
Held-out scores: EconML's `RScorer` R-score (`r_score`) and the doubly robust Qini and AUUC of the
model's ranking (`dr_qini`, `dr_auuc`). Rows whose estimated propensity is outside the overlap
bounds are trimmed before anything is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import cross_val_predict

from tala_ray.core.errors import UserError
from tala_ray.models import uplift_metrics as um
from tala_ray.models.preprocessing import Preprocessor
from tala_ray.models.training_data import PreparedData, TrainingFrame


def repayment(frame: TrainingFrame) -> np.ndarray:
    """The outcome the models fit: 1 = repaid, so effects are reductions in default probability."""
    return 1.0 - frame.target.astype(np.float64)


def treatment_of(frame: TrainingFrame) -> np.ndarray:
    if frame.treatment is None:
        raise UserError("data: an uplift experiment needs a treatment column")
    return frame.treatment.astype(np.int64)


def require_both_arms(frame: TrainingFrame) -> TrainingFrame:
    """The frame, if its treatment column has both arms (0 and 1)."""
    treatment = treatment_of(frame)
    if np.unique(treatment).size != 2:
        raise UserError(
            f"data: the treatment column needs both arms (0 and 1); found {sorted(np.unique(treatment).tolist())}"
        )
    return frame


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
    from econml.score import RScorer  # econml is slow to import; only tuning needs it here

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


def estimated_propensity(frame: TrainingFrame, seed: int) -> np.ndarray:
    """Cross-fitted P(treatment | features) (LightGBM); the recorded propensity is not trusted."""
    dense = Preprocessor.fit(frame.features).transform_dense(frame.features)
    model = um.nuisance_lgbm(True, seed)
    return cross_val_predict(model, dense, treatment_of(frame), cv=3, method="predict_proba")[:, 1]


@dataclass(frozen=True)
class OverlapTrimmed(PreparedData):
    """The rows inside the overlap bounds (`frame`), and what trimming them found."""

    full: TrainingFrame  # every row, before trimming
    overlap: um.OverlapReport
    estimated_propensity: np.ndarray  # of every row of `full`


def trim_to_overlap(frame: TrainingFrame, low: float, high: float, seed: int) -> OverlapTrimmed:
    """Estimate propensities, warn about and drop rows outside [low, high]."""
    propensity = estimated_propensity(frame, seed)
    overlap = um.overlap_check(propensity, low, high)
    kept = np.flatnonzero(overlap.keep)
    if kept.size < 50:
        raise UserError(
            f"model.overlap: only {kept.size} rows have propensities inside [{overlap.low}, {overlap.high}]"
        )
    return OverlapTrimmed(frame=frame.take(kept), full=frame, overlap=overlap, estimated_propensity=propensity)
