"""Uplift (CATE) estimators from EconML behind one interface, and their safe save/load.

Every estimator keeps EconML's names: `fit(Y, T, *, X, W=None)` returns self, `effect(X)` is the
change in the outcome caused by the intervention (E[Y(1) - Y(0) | X]), and `effect_interval(X)`
its confidence band where the EconML estimator gives one. The tuning code fits them on the
repayment indicator (1 - defaulted), so `effect` is the reduction in default probability, or on a
continuous outcome (days late), so `effect` is the treated-minus-control change in its units.

Several interventions: `T` holds arm codes 0 (none) .. K-1 (EconML's discrete treatment with several
values); `effect(X, T1=k)` is arm k's effect against none and `arm_effects(X)` all of them (rows x
arms 1 .. K-1). One intervention is the case K = 2, with `arm_effects(X)` = `effect(X)` as a column.

Families: `dr_learner` (DRLearner, LightGBM final stage), `x_learner` and `t_learner`
(metalearners), `causal_forest` (CausalForestDML) and `linear_dml` (LinearDML, readable
coefficients). Nuisance models (outcome and propensity) are LightGBM with the `nuisance_*`
hyperparameters. Features go through the shared `Preprocessor` (medians, one-hot levels), stored
as JSON.

Storage: EconML estimators have no format that runs no code, so the fitted estimator is pickled
(`estimator.pkl`), and unpickling runs whatever the pickle says. It is therefore unpickled only
from bytes the training job vouched for: `load_predictor` first verifies the manifest's Ed25519
signature against the trusted keys (`Registry.verified_manifest`, before any byte is parsed), then
each file against the signed sha256 (`Registry.read_verified`), and only then calls `from_files`.
A checksum alone is no defence (whoever can write the file can rewrite the checksum beside it);
the signature is. The preprocessing and the hyperparameters are JSON. Refitting at load time
would be safe but slow and not reproducible bit for bit, so it is not done.
"""

from __future__ import annotations

import json
import pickle
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tala_ray.core.errors import UserError
from tala_ray.models.preprocessing import FeatureBatch, Preprocessor

HEADER_FILE = "uplift_model.json"
PREPROCESSING_FILE = "preprocessing.json"
ESTIMATOR_FILE = "estimator.pkl"
MODEL_FILES = [HEADER_FILE, PREPROCESSING_FILE, ESTIMATOR_FILE]


class UpliftEstimator:
    """Shared behaviour: hyperparameters, preprocessing, EconML calls, files."""

    family: ClassVar[str]
    has_intervals: ClassVar[bool] = False

    def __init__(
        self,
        nuisance_n_estimators: int = 200,
        nuisance_learning_rate: float = 0.05,
        nuisance_num_leaves: int = 15,
        nuisance_min_child_samples: int = 50,
        cv: int = 3,
        seed: int = 0,
    ) -> None:
        self.nuisance_n_estimators = nuisance_n_estimators
        self.nuisance_learning_rate = nuisance_learning_rate
        self.nuisance_num_leaves = nuisance_num_leaves
        self.nuisance_min_child_samples = nuisance_min_child_samples
        self.cv = cv
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters given to `__init__` (learned state ends in `_`)."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    # Nuisance models.
    def _lgbm_params(self, prefix: str = "nuisance") -> dict[str, Any]:
        return {
            "n_estimators": getattr(self, f"{prefix}_n_estimators"),
            "learning_rate": getattr(self, f"{prefix}_learning_rate"),
            "num_leaves": getattr(self, f"{prefix}_num_leaves"),
            "min_child_samples": getattr(self, f"{prefix}_min_child_samples"),
            "subsample": 0.8,
            "subsample_freq": 1,
            "random_state": self.seed,
            "n_jobs": 1,
            "verbose": -1,
        }

    def outcome_model(self) -> Any:
        from lightgbm import LGBMRegressor

        return LGBMRegressor(**self._lgbm_params())

    def propensity_model(self) -> Any:
        from lightgbm import LGBMClassifier

        return LGBMClassifier(**self._lgbm_params())

    def _build(self) -> Any:
        raise NotImplementedError

    # EconML contract.
    def fit(self, Y: np.ndarray, T: np.ndarray, *, X: pd.DataFrame, W: pd.DataFrame | None = None) -> UpliftEstimator:
        """Fit on outcomes `Y`, treatment arm codes `T` (0 = none, 1 .. K-1; binary 0/1 for one
        intervention), effect modifiers `X` and controls `W`."""
        T = np.asarray(T).astype(np.int64)
        found = sorted(np.unique(T).tolist())
        if found != list(range(max(2, len(found)))):
            if max(found, default=0) <= 1:
                raise UserError("treatment: needs both arms (0 and 1) in the training data")
            raise UserError(
                f"treatment: needs every arm code from 0 to {max(found)} in the training data; found {found}"
            )
        if W is not None and not self._accepts_controls():
            raise UserError(f"W: {self.family} takes no controls; pass every column as X")
        self.preprocessor_ = Preprocessor.fit(X)
        self.controls_ = None if W is None else Preprocessor.fit(W)
        self.estimator_ = self._build()
        self.estimator_.fit(np.asarray(Y, dtype=np.float64), T, **self._inputs(X, W))
        for shortcut in ("treatment_step_", "lightgbm_only_"):  # cached from an earlier fit
            vars(self).pop(shortcut, None)
        return self

    def _inputs(self, X: pd.DataFrame, W: pd.DataFrame | None) -> dict[str, np.ndarray]:
        inputs = {"X": self._dense(X)}
        if W is not None and self.controls_ is not None:
            inputs["W"] = self.controls_.transform_dense(W).astype(np.float64)
        return inputs

    def _dense(self, X: FeatureBatch) -> np.ndarray:
        """The effect modifiers as the EconML estimator sees them."""
        return self.preprocessor_.transform_dense(X).astype(np.float64)

    def _accepts_controls(self) -> bool:
        return True

    @property
    def n_arms_(self) -> int:
        """K: no intervention and the K - 1 intervention arms the estimator was fitted on."""
        return int(self.estimator_._d_t[0]) + 1

    def effect(self, X: FeatureBatch, T1: int = 1) -> np.ndarray:
        """E[Y(T1) - Y(0) | X] per row, shape (n,): EconML's `effect(X, T0=0, T1=T1)`, exactly."""
        dense = self._dense(X)
        step = self.treatment_step_
        if step is not None and T1 == 1:
            # EconML's LinearCateEstimator.effect for one binary treatment and a vector outcome.
            return np.einsum("mt,mt->m", self._constant_marginal_effect(dense), np.repeat(step, len(dense), axis=0))
        self._check_arm(T1)
        effect = self.estimator_.effect(dense) if T1 == 1 else self.estimator_.effect(dense, T0=0, T1=T1)
        return np.asarray(effect, dtype=np.float64).reshape(-1)

    def arm_effects(self, X: FeatureBatch) -> np.ndarray:
        """Every intervention arm's effect against none: rows x arms 1 .. K-1 (`effect(X, T1=k)` by column)."""
        return np.column_stack([self.effect(X, T1=arm) for arm in range(1, self.n_arms_)])

    def _check_arm(self, arm: int) -> None:
        if not 1 <= arm < self.n_arms_:
            raise UserError(f"T1: arm {arm} is not an intervention arm of this model (1 to {self.n_arms_ - 1})")

    def _constant_marginal_effect(self, dense: np.ndarray) -> np.ndarray:
        """EconML's `const_marginal_effect` (shape (n, 1)); metalearners compute it without its wrappers."""
        return self.estimator_.const_marginal_effect(dense)

    @cached_property
    def treatment_step_(self) -> np.ndarray | None:
        """T1 - T0 as EconML expands treatments 0 and 1 (shape (1, 1)) when `effect` reduces to
        const_marginal_effect @ (T1 - T0): one binary treatment, a vector outcome, EconML's own
        `effect`; None otherwise (then `effect` calls EconML's)."""
        from econml._cate_estimator import LinearCateEstimator, TreatmentExpansionMixin

        estimator = self.estimator_
        plain = type(estimator).effect in (TreatmentExpansionMixin.effect, LinearCateEstimator.effect)
        if not plain or getattr(estimator, "_d_t", None) != (1,) or getattr(estimator, "_d_y", None) != ():
            return None
        _, t0, t1 = estimator._expand_treatments(None, 0, 1)
        return np.asarray(t1 - t0, dtype=np.float64).reshape(1, 1)

    def effect_interval(self, X: pd.DataFrame, alpha: float = 0.05, T1: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper (1 - alpha) bounds of each row's effect of arm `T1` (families with inference only)."""
        if not self.has_intervals:
            raise UserError(f"model.kind: {self.family} gives no per-row intervals; use causal_forest or linear_dml")
        self._check_arm(T1)
        if T1 == 1:
            lower, upper = self.estimator_.effect_interval(self._dense(X), alpha=alpha)
        else:
            lower, upper = self.estimator_.effect_interval(self._dense(X), T0=0, T1=T1, alpha=alpha)
        return np.asarray(lower, dtype=np.float64).reshape(-1), np.asarray(upper, dtype=np.float64).reshape(-1)

    # Files.
    def to_files(self) -> dict[str, bytes]:
        header = {"family": self.family, "params": self.get_params()}
        return {
            HEADER_FILE: json.dumps(header, indent=1, sort_keys=True).encode(),
            PREPROCESSING_FILE: self.preprocessor_.to_json(),
            ESTIMATOR_FILE: pickle.dumps(self.estimator_, protocol=pickle.HIGHEST_PROTOCOL),
        }


class DRLearnerUplift(UpliftEstimator):
    """Doubly robust learner: LightGBM regression of the DR pseudo-outcome on X."""

    family = "dr_learner"

    def __init__(
        self,
        final_n_estimators: int = 100,
        final_learning_rate: float = 0.05,
        final_num_leaves: int = 7,
        final_min_child_samples: int = 200,
        min_propensity: float = 0.02,
        **nuisance: Any,
    ) -> None:
        super().__init__(**nuisance)
        self.final_n_estimators = final_n_estimators
        self.final_learning_rate = final_learning_rate
        self.final_num_leaves = final_num_leaves
        self.final_min_child_samples = final_min_child_samples
        self.min_propensity = min_propensity

    def _build(self) -> Any:
        from econml.dr import DRLearner
        from lightgbm import LGBMRegressor

        return DRLearner(
            model_propensity=self.propensity_model(),
            model_regression=self.outcome_model(),
            model_final=LGBMRegressor(**self._lgbm_params("final")),
            min_propensity=self.min_propensity,
            cv=self.cv,
            random_state=self.seed,
        )


class _MetaLearnerUplift(UpliftEstimator):
    def _accepts_controls(self) -> bool:
        return False  # EconML's metalearners take X only

    def _constant_marginal_effect(self, dense: np.ndarray) -> np.ndarray:
        """EconML's formula on the fitted LightGBM boosters' own predictions (what their scikit-learn
        wrappers return), without the wrappers' input checks; EconML's own call for other models."""
        if not self.lightgbm_only_:
            return super()._constant_marginal_effect(dense)
        return self._metalearner_effect(dense).reshape(len(dense), 1)

    def _metalearner_effect(self, dense: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @cached_property
    def lightgbm_only_(self) -> bool:
        """Every fitted sub-model is a LightGBM regressor, or a binary classifier with a built-in objective."""
        from lightgbm import LGBMClassifier, LGBMRegressor

        def plain(model: Any) -> bool:
            if type(model) is LGBMRegressor:
                return True
            return type(model) is LGBMClassifier and model.n_classes_ == 2 and not callable(model.objective_)

        return all(plain(model) for model in self._sub_models())

    def _sub_models(self) -> list[Any]:
        raise NotImplementedError


def _predict(model: Any, dense: np.ndarray) -> np.ndarray:
    """A fitted LightGBM model's `predict` (regressor) or default probability (binary classifier),
    straight from its booster: the values its scikit-learn wrapper returns."""
    return model.booster_.predict(dense, num_threads=1)


class XLearnerUplift(_MetaLearnerUplift):
    """X-learner: per-arm outcome models, imputed effects, propensity-weighted CATE models."""

    family = "x_learner"

    def __init__(
        self,
        final_n_estimators: int = 100,
        final_learning_rate: float = 0.05,
        final_num_leaves: int = 7,
        final_min_child_samples: int = 200,
        **nuisance: Any,
    ) -> None:
        super().__init__(**nuisance)
        self.final_n_estimators = final_n_estimators
        self.final_learning_rate = final_learning_rate
        self.final_num_leaves = final_num_leaves
        self.final_min_child_samples = final_min_child_samples

    def _build(self) -> Any:
        from econml.metalearners import XLearner
        from lightgbm import LGBMRegressor

        return XLearner(
            models=self.outcome_model(),
            cate_models=LGBMRegressor(**self._lgbm_params("final")),
            propensity_model=self.propensity_model(),
        )

    def _sub_models(self) -> list[Any]:
        e = self.estimator_
        return [*e.propensity_models, *e.cate_controls_models, *e.cate_treated_models]

    def _metalearner_effect(self, dense: np.ndarray) -> np.ndarray:
        """XLearner.const_marginal_effect: g(x) tau0(x) + (1 - g(x)) tau1(x), g the propensity."""
        e = self.estimator_
        propensity = _predict(e.propensity_models[0], dense)
        return propensity * _predict(e.cate_controls_models[0], dense) + (1 - propensity) * _predict(
            e.cate_treated_models[0], dense
        )


class TLearnerUplift(_MetaLearnerUplift):
    """T-learner: one outcome model per arm; the effect is their difference."""

    family = "t_learner"

    def _build(self) -> Any:
        from econml.metalearners import TLearner

        return TLearner(models=self.outcome_model())

    def _sub_models(self) -> list[Any]:
        return list(self.estimator_.models)

    def _metalearner_effect(self, dense: np.ndarray) -> np.ndarray:
        """TLearner.const_marginal_effect: mu1(x) - mu0(x)."""
        models = self.estimator_.models
        return _predict(models[1], dense) - _predict(models[0], dense)


class CausalForestUplift(UpliftEstimator):
    """CausalForestDML: an honest causal forest on residualised outcome and treatment."""

    family = "causal_forest"
    has_intervals = True

    def __init__(
        self,
        n_estimators: int = 200,
        min_samples_leaf: int = 50,
        max_depth: int | None = None,
        max_samples: float = 0.45,
        **nuisance: Any,
    ) -> None:
        super().__init__(**nuisance)
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_depth = max_depth
        self.max_samples = max_samples

    def _build(self) -> Any:
        from econml.dml import CausalForestDML

        return CausalForestDML(
            model_y=self.outcome_model(),
            model_t=self.propensity_model(),
            discrete_treatment=True,
            n_estimators=max(4, self.n_estimators // 4 * 4),  # a multiple of subforest_size (4)
            min_samples_leaf=self.min_samples_leaf,
            max_depth=self.max_depth,
            max_samples=self.max_samples,
            cv=self.cv,
            n_jobs=1,
            random_state=self.seed,
        )


class LinearDMLUplift(UpliftEstimator):
    """LinearDML: effect linear in a few named effect modifiers (the rest are controls W).

    Readable: `coefficients()` gives the effect's intercept and slope per standardised modifier,
    categoricals against their first level. Missing-value indicators are left out of the final
    stage (they duplicate one another and make its covariance singular).
    """

    family = "linear_dml"
    has_intervals = True

    def __init__(self, effect_modifiers: list[str] | None = None, **nuisance: Any) -> None:
        super().__init__(**nuisance)
        self.effect_modifiers = effect_modifiers

    def fit(self, Y: np.ndarray, T: np.ndarray, *, X: pd.DataFrame, W: pd.DataFrame | None = None) -> LinearDMLUplift:
        if self.effect_modifiers is None:
            return super().fit(Y, T, X=X, W=W)
        unknown = sorted(set(self.effect_modifiers) - set(X.columns))
        if unknown:
            raise UserError(f"effect_modifiers: {unknown} are not feature columns")
        controls = X.drop(columns=self.effect_modifiers)
        if W is not None:
            controls = pd.concat([controls, W], axis=1)
        super().fit(Y, T, X=X[self.effect_modifiers], W=controls if controls.shape[1] else None)
        return self

    def _build(self) -> Any:
        from econml.dml import LinearDML

        return LinearDML(
            model_y=self.outcome_model(),
            model_t=self.propensity_model(),
            discrete_treatment=True,
            cv=self.cv,
            random_state=self.seed,
        )

    def _kept_columns(self) -> np.ndarray:
        """Dense columns without missing indicators and without each categorical's reference level."""
        reference = {f"{column.name}={column.levels[0]}" for column in self.preprocessor_.categorical if column.levels}
        columns = self.preprocessor_.dense_columns()
        return np.array(
            [i for i, (name, _) in enumerate(columns) if name not in reference and not name.endswith("__missing")],
            dtype=int,
        )

    def _dense(self, X: FeatureBatch) -> np.ndarray:
        return super()._dense(X)[:, self._kept_columns()]

    def coefficients(self) -> pd.Series:
        """The effect's intercept and slope per standardised modifier column."""
        columns = self.preprocessor_.dense_columns()
        names = ["intercept"] + [columns[i][0] for i in self._kept_columns()]
        values = [float(np.ravel(self.estimator_.intercept_)[0])] + list(np.ravel(self.estimator_.coef_))
        return pd.Series(values, index=names)


UPLIFT_ESTIMATORS: dict[str, type[UpliftEstimator]] = {
    cls.family: cls for cls in (DRLearnerUplift, XLearnerUplift, TLearnerUplift, CausalForestUplift, LinearDMLUplift)
}


def estimator_from_files(files: dict[str, bytes]) -> UpliftEstimator:
    """Rebuild a fitted estimator from its files.

    Unpickles `estimator.pkl`, which runs code: call it ONLY with bytes checked against the sha256
    of a manifest whose signature verified (`Registry.verified_manifest`, then `read_verified`, as
    `load_predictor` does), never with files from anywhere else.
    """
    header = json.loads(files[HEADER_FILE])
    family = header["family"]
    if family not in UPLIFT_ESTIMATORS:
        raise UserError(f"uplift model: unknown family {family!r}")
    estimator = UPLIFT_ESTIMATORS[family](**header["params"])
    estimator.preprocessor_ = Preprocessor.from_json(files[PREPROCESSING_FILE])
    estimator.controls_ = None
    estimator.estimator_ = pickle.loads(files[ESTIMATOR_FILE])  # noqa: S301 - signed bytes only (see above)
    return estimator
