"""Ready models from the registry: credit and uplift predictors, and `load_predictor`, which builds
the predictor a manifest's kind names.

Loading resolves the reference (alias or version), verifies the manifest's signature against the
trusted keys (`Registry.verified_manifest`: an unsigned or wrongly signed version is refused before
any of its bytes is parsed), checks its kind and feature set, verifies every model file against
the signed sha256 (`Registry.read_verified`), and only then rebuilds the estimator from those very
bytes (the uplift estimator is unpickled: signed bytes only). Last, the model must score the fixed
probe rows (`tala_ray.models.probe`) sanely, so a broken model fails its load (and a deploy)
instead of answering errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import pandas as pd

from tala_ray.core.errors import UserError
from tala_ray.core.registry import ArtifactManifest, Registry
from tala_ray.data.schema import INTERVENTION
from tala_ray.models import credit, uplift
from tala_ray.models.preprocessing import FeatureBatch, missing_columns
from tala_ray.models.probe import bad_values, probe_features


class FeatureSetMismatchError(UserError):
    """The model was trained on a different feature-set version than the caller computes."""


class ProbeFailedError(UserError):
    """The model does not score the fixed probe rows sanely: it is not served."""


def _checked(predictor: CreditPredictor | UpliftPredictor, features: FeatureBatch) -> FeatureBatch:
    """The batch itself once it has every model feature (the estimators read columns by name)."""
    missing = missing_columns(features, predictor.feature_names)
    if missing:
        raise UserError(f"features: {predictor.name}@{predictor.version} needs columns {missing} that the batch lacks")
    return features


@dataclass(frozen=True)
class CreditPredictor:
    """A ready credit model: feature batch in, default probabilities (and contributions) out."""

    name: str
    version: str
    feature_set_version: str | None
    feature_names: list[str]
    estimator: credit.CreditEstimator

    def predict_proba(self, features: FeatureBatch) -> np.ndarray:
        """Probability of default for each row, shape (n,)."""
        return self.estimator.predict_proba(_checked(self, features))[:, 1]

    def contributions(self, features: FeatureBatch) -> pd.DataFrame:
        """Per-feature contributions to each row's risk score (log-odds; positive raises the PD)."""
        return self.estimator.contributions(_checked(self, features))

    def score(self, features: FeatureBatch) -> tuple[np.ndarray, pd.DataFrame]:
        """`predict_proba(features)` and `contributions(features)` (exactly those values) from one
        pass over the frame: what a caller that needs both should use, at little more than the cost
        of one. Columns are matched by name; extra columns are ignored."""
        return self.estimator.score(_checked(self, features))


@dataclass(frozen=True)
class UpliftPredictor:
    """A ready uplift model: feature batch in, reduction in default probability out (per intervention
    arm with several: `arms`, in treatment-code order)."""

    name: str
    version: str
    feature_set_version: str | None
    feature_names: list[str]
    estimator: uplift.UpliftEstimator
    arms: tuple[str, ...] = (INTERVENTION,)

    def effect(self, features: FeatureBatch) -> np.ndarray:
        """pd_control - pd_treated per row (positive: the intervention improves repayment)."""
        return self.estimator.effect(_checked(self, features))  # the preprocessing reads its columns by name

    def arm_effects(self, features: FeatureBatch) -> np.ndarray:
        """Every arm's pd_control - pd_arm per row: rows x `arms`."""
        return self.estimator.arm_effects(_checked(self, features))


Predictor = CreditPredictor | UpliftPredictor


def _identity(manifest: ArtifactManifest) -> dict[str, Any]:
    return {
        "name": manifest.name,
        "version": manifest.version,
        "feature_set_version": manifest.feature_set_version,
        "feature_names": manifest.feature_names,
    }


def _credit(registry: Registry, manifest: ArtifactManifest) -> CreditPredictor:
    files = registry.read_verified(manifest, only=credit.model_files(manifest.family))
    return CreditPredictor(**_identity(manifest), estimator=credit.estimator_from_files(files))


def _uplift(registry: Registry, manifest: ArtifactManifest) -> UpliftPredictor:
    files = registry.read_verified(manifest, only=uplift.MODEL_FILES)
    estimator = uplift.estimator_from_files(files)
    costs = manifest.extra.get("intervention_costs")  # a multi-arm experiment's arms, in treatment-code order
    arms = tuple(costs) if costs else (INTERVENTION,)
    if len(arms) != estimator.n_arms_ - 1:
        raise UserError(f"model {manifest.name}@{manifest.version}: {estimator.n_arms_ - 1} arms fitted, {arms} named")
    return UpliftPredictor(**_identity(manifest), estimator=estimator, arms=arms)


BUILDERS: dict[str, Callable[[Registry, ArtifactManifest], Predictor]] = {"credit": _credit, "uplift": _uplift}
"""Manifest kind -> the builder of its predictor (from the registry's verified files)."""


def check_probe(predictor: Predictor) -> None:
    """Refuse a predictor whose answers on the probe rows are not sane: finite default probabilities
    in [0, 1] and finite contributions (credit), finite effects (uplift)."""
    preprocessor = predictor.estimator.preprocessor_
    features = probe_features(
        list(dict.fromkeys([*predictor.feature_names, *preprocessor.feature_names])), preprocessor
    )
    try:
        if isinstance(predictor, CreditPredictor):
            probabilities, contributions = predictor.score(features)
            problems = [
                ("default probabilities", bad_values(probabilities, 0.0, 1.0)),
                ("contributions", bad_values(contributions.to_numpy())),
            ]
        else:
            problems = [("effects", bad_values(predictor.arm_effects(features)))]
    except Exception as error:
        raise ProbeFailedError(
            f"model {predictor.name}@{predictor.version}: the probe prediction failed "
            f"({type(error).__name__}: {error}); refusing to serve it"
        ) from error
    for what, problem in problems:
        if problem is not None:
            raise ProbeFailedError(
                f"model {predictor.name}@{predictor.version}: {what} {problem}; refusing to serve it"
            )


def check_feature_set(manifest: ArtifactManifest, expected: str | None) -> None:
    """Refuse a model trained on another feature-set version than `expected` (None: no check)."""
    if expected is not None and manifest.feature_set_version != expected:
        raise FeatureSetMismatchError(
            f"model {manifest.name}@{manifest.version}: trained on feature set "
            f"{manifest.feature_set_version!r}, but the caller computes {expected!r}"
        )


@overload
def load_predictor(
    registry_uri: str,
    name: str,
    ref: str = ...,
    expected_feature_set_version: str | None = ...,
    *,
    kind: Literal["credit"],
) -> CreditPredictor: ...
@overload
def load_predictor(
    registry_uri: str,
    name: str,
    ref: str = ...,
    expected_feature_set_version: str | None = ...,
    *,
    kind: Literal["uplift"],
) -> UpliftPredictor: ...
@overload
def load_predictor(
    registry_uri: str,
    name: str,
    ref: str = ...,
    expected_feature_set_version: str | None = ...,
    kind: str | None = ...,
) -> Predictor: ...
def load_predictor(
    registry_uri: str,
    name: str,
    ref: str = "champion",
    expected_feature_set_version: str | None = None,
    kind: str | None = None,
) -> Predictor:
    """The predictor of model `name` at `ref` (alias or version), built as its manifest's kind says;
    `kind` given: a model of another kind is refused. Signature, checksums and the probe are checked."""
    registry = Registry(registry_uri)
    manifest = registry.verified_manifest(name, registry.resolve(name, ref))
    if kind is not None and manifest.kind != kind:
        article = "an" if kind[:1] in "aeiou" else "a"
        raise UserError(f"model {name}@{manifest.version}: is a {manifest.kind!r} model, not {article} {kind} model")
    if manifest.kind not in BUILDERS:
        known = ", ".join(BUILDERS)
        raise UserError(f"model {name}@{manifest.version}: kind {manifest.kind!r} has no predictor (known: {known})")
    check_feature_set(manifest, expected_feature_set_version)
    predictor = BUILDERS[manifest.kind](registry, manifest)
    check_probe(predictor)
    return predictor
