"""The model registry: versions, aliases, checksum and feature-set checks, loading by alias."""

from __future__ import annotations

import numpy as np
import pytest
from test_credit_models import toy_credit_frame

from tala_ray.core.errors import UserError
from tala_ray.core.registry import ArtifactIntegrityError, ArtifactMetadata, Registry, parse_model_ref
from tala_ray.models.credit import ESTIMATORS
from tala_ray.models.predictors import FeatureSetMismatchError, load_predictor


def register_model(registry: Registry, family: str = "logistic", feature_set: str = "fs1", auc: float = 0.7):
    frame, y = toy_credit_frame(n=1500)
    model = ESTIMATORS[family](**({"n_estimators": 30} if family == "gbm" else {})).fit(frame, y)
    metadata = ArtifactMetadata(
        kind="credit",
        family=family,
        feature_set_version=feature_set,
        feature_names=list(frame.columns),
        metrics={"auc": auc},
    )
    return registry.register("pd", {**model.to_files(), "report.md": b"# report"}, metadata), model, frame


def test_versions_aliases_and_load_by_alias(tmp_path):
    registry = Registry(str(tmp_path / "reg"))
    first, _, _ = register_model(registry)
    second, model, frame = register_model(registry, family="gbm", auc=0.8)
    assert (first.version, second.version) == ("1", "2")
    assert registry.names() == ["pd"] and registry.versions("pd") == ["1", "2"]
    assert second.git_commit and set(second.files) >= {"model.json", "preprocessing.json", "model.txt", "report.md"}

    with pytest.raises(UserError, match="champion"):
        load_predictor(str(tmp_path / "reg"), "pd", kind="credit")
    registry.set_alias("pd", "champion", "2")
    registry.set_alias("pd", "challenger", "1")
    predictor = load_predictor(str(tmp_path / "reg"), "pd", expected_feature_set_version="fs1", kind="credit")
    assert predictor.version == "2" and predictor.feature_names == ["income", "debt", "country"]
    # Column order of the batch does not matter; the predictor selects its features.
    shuffled = frame[["country", "debt", "income"]].assign(extra=1.0)
    np.testing.assert_allclose(predictor.predict_proba(shuffled), model.predict_proba(frame)[:, 1])
    assert predictor.contributions(frame.head(3)).shape == (3, 3)
    assert load_predictor(str(tmp_path / "reg"), "pd", ref="challenger", kind="credit").version == "1"
    with pytest.raises(UserError, match=r"needs columns \['debt'\]"):
        predictor.predict_proba(frame.drop(columns=["debt"]))
    assert registry.resolve("pd") == "2" and registry.resolve("pd", "1") == "1"


def test_checksum_mismatch_is_refused(tmp_path):
    registry = Registry(str(tmp_path))
    manifest, _, _ = register_model(registry)
    registry.set_alias("pd", "champion", manifest.version)
    weights = tmp_path / "pd" / manifest.version / "coefficients.json"
    weights.write_bytes(weights.read_bytes().replace(b"[", b"[ 9.0,", 1))
    with pytest.raises(ArtifactIntegrityError, match="checksum mismatch for 'coefficients.json'"):
        load_predictor(str(tmp_path), "pd", kind="credit")


def test_feature_set_mismatch_is_refused(tmp_path):
    registry = Registry(str(tmp_path))
    manifest, _, _ = register_model(registry, feature_set="fs1")
    registry.set_alias("pd", "champion", manifest.version)
    with pytest.raises(FeatureSetMismatchError, match="'fs1'.*'fs2'"):
        load_predictor(str(tmp_path), "pd", expected_feature_set_version="fs2", kind="credit")


def test_bad_alias_unknown_version_and_incomplete_versions(tmp_path):
    registry = Registry(str(tmp_path))
    register_model(registry)
    with pytest.raises(UserError, match="alias"):
        registry.set_alias("pd", "production", "1")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="no version '7'"):
        registry.set_alias("pd", "champion", "7")
    (tmp_path / "pd" / "5").mkdir()  # a crashed write: no manifest
    assert registry.versions("pd") == ["1"]
    assert register_model(registry)[0].version == "6"
    with pytest.raises(UserError, match="not in the registry"):
        registry.resolve("nope")


def test_parse_model_ref():
    assert parse_model_ref("pd@3") == ("pd", "3")
    assert parse_model_ref("pd") == ("pd", None)
    with pytest.raises(UserError):
        parse_model_ref("@3")


def test_versions_are_signed_as_registered_and_signing_later_checks_the_files_first(tmp_path):
    registry = Registry(str(tmp_path))
    manifest, _, _ = register_model(registry)
    directory = tmp_path / "pd" / manifest.version
    assert registry.verified_manifest("pd", manifest.version) == manifest
    assert registry.signer("pd", manifest.version) == registry.signing_key().key_id
    assert "manifest.sig" not in manifest.files  # the signature vouches for the manifest, which lists the files

    (directory / "manifest.sig").unlink()  # a version from before signing: shown, not loaded
    assert registry.manifest("pd", manifest.version) == manifest
    with pytest.raises(UserError, match="not signed"):
        registry.verified_manifest("pd", manifest.version)
    weights = directory / "coefficients.json"
    weights.write_bytes(weights.read_bytes().replace(b"[", b"[ 9.0,", 1))
    with pytest.raises(ArtifactIntegrityError, match="checksum mismatch for 'coefficients.json'"):
        registry.sign("pd", manifest.version)  # never vouches for files that do not match
    assert not (directory / "manifest.sig").exists()
