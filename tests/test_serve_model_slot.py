"""A model deployment's slot keeps serving the old model when a reload fails (real registry, no Ray)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tala_ray.core.errors import UserError
from tala_ray.core.registry import ArtifactMetadata, Registry
from tala_ray.models.credit import LogisticCreditModel
from tala_ray.serving.model_slot import ModelConfig, ModelSlot

FSV = "fs-test-1"


def register_credit(registry: Registry, seed: int, feature_set_version: str = FSV) -> str:
    rng = np.random.default_rng(seed)
    features = pd.DataFrame(
        {"x1": rng.normal(size=300), "x2": rng.normal(size=300), "country": rng.choice(["KE", "MX"], 300)}
    )
    y = (features["x1"] + rng.normal(size=300) > 1).astype(int).to_numpy()
    model = LogisticCreditModel(C=1.0 / (seed + 1)).fit(features, y)
    metadata = ArtifactMetadata(
        kind="credit", family="logistic", feature_set_version=feature_set_version, feature_names=list(features.columns)
    )
    return registry.register("credit", model.to_files(), metadata).version


def config(registry: Registry, version: str) -> ModelConfig:
    return ModelConfig(registry_uri=registry.uri, name="credit", version=version, expected_feature_set_version=FSV)


def test_failed_reloads_keep_the_old_model_and_say_why(tmp_path):
    registry = Registry(str(tmp_path / "registry"))
    v1, v2 = register_credit(registry, 0), register_credit(registry, 1)
    wrong_features = register_credit(registry, 2, feature_set_version="fs-other")
    corrupted = register_credit(registry, 3)
    (tmp_path / "registry" / "credit" / corrupted / "coefficients.json").write_text(
        '{"coef": [9, 9, 9], "intercept": 0}'
    )
    missing = register_credit(registry, 4)
    (tmp_path / "registry" / "credit" / missing / "preprocessing.json").unlink()

    slot = ModelSlot("credit")
    with pytest.raises(UserError):  # nothing serving yet: the failure propagates (Serve reports it)
        slot.apply(config(registry, corrupted))
    slot.apply(config(registry, v1))
    assert slot.served_version == v1 and slot.load_error is None

    for bad, reason in [
        (wrong_features, "feature set"),
        (corrupted, "checksum"),
        (missing, "checksum"),
        ("99", "no version"),
    ]:
        slot.apply(config(registry, bad))
        assert slot.served_version == v1
        assert reason in slot.load_error and f"credit@{bad}" in slot.load_error

    slot.apply(config(registry, v2))
    assert slot.served_version == v2 and slot.info()["load_error"] is None
    assert slot.info()["feature_set_version"] == FSV
