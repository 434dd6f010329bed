"""Signed manifests: a registry writer cannot make serving run code or serve a broken model.

Reproduces the defect of issue 17 ("Artifacts that run code"): a crafted `estimator.pkl` whose
sha256 was rewritten in `manifest.json` was unpickled (its payload ran) by every loader.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import shutil
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tala_ray.core import signing
from tala_ray.core.errors import UserError
from tala_ray.core.registry import ArtifactMetadata, Registry
from tala_ray.core.settings import get_settings
from tala_ray.core.signing import SignatureError, generate_key_pair, load_signing_key, load_trusted_keys
from tala_ray.models.credit import LogisticCreditModel
from tala_ray.models.predictors import ProbeFailedError, load_predictor
from tala_ray.models.uplift import UPLIFT_ESTIMATORS
from tala_ray.serving.args import AppArgs
from tala_ray.serving.model_slot import ModelConfig, ModelSlot
from tala_ray.serving.steps import step_configs


class WritesMarker:
    """A pickle payload: unpickling it creates the file `marker` (any code could run instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class NanEffect:
    """A (signed) stand-in for an EconML estimator of one binary treatment whose effects are NaN."""

    _d_t = (1,)  # one treatment column, as EconML records it

    def effect(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), np.nan)


def toy_frame(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "country": rng.choice(["KE", "MX"], n)})
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.6 + 0.1 * t * (X["x1"] > 0)).astype(int).to_numpy()
    return X, y, t


@pytest.fixture(scope="module")
def uplift_model():
    X, y, t = toy_frame()
    return UPLIFT_ESTIMATORS["t_learner"](nuisance_n_estimators=10, cv=2).fit(y, t, X=X), X


FSV = "fs-signing-test"


def register_uplift(registry: Registry, estimator, X: pd.DataFrame, files: dict[str, bytes] | None = None) -> str:
    metadata = ArtifactMetadata(
        kind="uplift", family=estimator.family, feature_set_version=FSV, feature_names=list(X.columns)
    )
    return registry.register("uplift", files or estimator.to_files(), metadata).version


def register_credit(registry: Registry, nan_coefficient: bool = False) -> tuple[str, LogisticCreditModel]:
    X, y, _ = toy_frame(300, seed=1)
    model = LogisticCreditModel().fit(X, y)
    if nan_coefficient:
        model.coef_[0] = np.nan
    metadata = ArtifactMetadata(
        kind="credit", family="logistic", feature_set_version=FSV, feature_names=list(X.columns)
    )
    return registry.register("credit", model.to_files(), metadata).version, model


@pytest.fixture
def other_key(tmp_path):
    """A key pair nobody trusts: its signing key, its public key as trusted keys, the public key's path."""
    private, public = generate_key_pair(tmp_path / "other-keys")
    return load_signing_key(private), load_trusted_keys([public]), public


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tala_ray.cli", *args], capture_output=True, text=True, timeout=300)


def test_a_crafted_pickle_with_its_checksum_rewritten_never_runs(tmp_path, uplift_model):
    registry = Registry(str(tmp_path / "registry"))
    version = register_uplift(registry, *uplift_model)
    directory = tmp_path / "registry" / "uplift" / version
    marker = tmp_path / "payload-ran"
    crafted = pickle.dumps(WritesMarker(marker))
    (directory / "estimator.pkl").write_bytes(crafted)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["estimator.pkl"] = hashlib.sha256(crafted).hexdigest()  # the checksum agrees again
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))

    with pytest.raises(SignatureError, match=rf"model uplift@{version}: manifest signature does not verify"):
        load_predictor(registry.uri, "uplift", ref=version, kind="uplift")
    assert not marker.exists(), "the pickle was loaded: its payload ran"

    slot = ModelSlot("uplift")  # a Serve replica's load: refused the same way, nothing runs
    with pytest.raises(SignatureError):
        slot.apply(ModelConfig(registry_uri=registry.uri, name="uplift", version=version))
    refused = run_cli("models", "verify", f"uplift@{version}", "--registry", registry.uri)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "signature does not verify" in refused.stderr and "Traceback" not in refused.stderr
    assert not marker.exists()


def test_correctly_signed_models_load(tmp_path, uplift_model):
    registry = Registry(str(tmp_path))
    estimator, X = uplift_model
    uplift_version = register_uplift(registry, estimator, X)
    credit_version, credit_model = register_credit(registry)
    assert json.loads((tmp_path / "uplift" / uplift_version / "manifest.sig").read_text())["algorithm"] == "ed25519"

    uplift = load_predictor(registry.uri, "uplift", ref=uplift_version, kind="uplift")
    np.testing.assert_array_equal(uplift.effect(X), estimator.effect(X))
    credit = load_predictor(registry.uri, "credit", ref=credit_version, kind="credit")
    np.testing.assert_array_equal(credit.predict_proba(X), credit_model.predict_proba(X)[:, 1])
    assert registry.signer("credit", credit_version) == registry.signing_key().key_id
    shown = run_cli("models", "verify", f"credit@{credit_version}", "--registry", registry.uri)
    assert shown.returncode == 0 and f"credit@{credit_version}: ok" in shown.stdout, shown.stderr


def test_an_unsigned_version_is_refused_and_says_how_to_fix_it(tmp_path, uplift_model):
    registry = Registry(str(tmp_path))
    version = register_uplift(registry, *uplift_model)
    (tmp_path / "uplift" / version / "manifest.sig").unlink()  # as written before signing existed

    with pytest.raises(SignatureError, match=rf"uplift@{version}: manifest is not signed.*tala-ray models sign"):
        load_predictor(registry.uri, "uplift", ref=version, kind="uplift")
    promoted = run_cli("models", "promote", "uplift", version, "--registry", registry.uri)
    assert promoted.returncode == 2 and "not signed" in promoted.stderr and registry.aliases("uplift") == {}

    signed = run_cli("models", "sign", f"uplift@{version}", "--registry", registry.uri)
    assert signed.returncode == 0 and "signed by key" in signed.stdout, signed.stderr
    assert load_predictor(registry.uri, "uplift", ref=version, kind="uplift").version == version
    assert run_cli("models", "promote", "uplift", version, "--registry", registry.uri).returncode == 0
    assert registry.aliases("uplift") == {"champion": version}


def test_a_manifest_signed_by_an_untrusted_key_is_refused(tmp_path, uplift_model, other_key):
    registry = Registry(str(tmp_path))
    version = register_uplift(registry, *uplift_model)
    stranger, stranger_public, _ = other_key
    Registry(registry.uri, signing_key=stranger).sign("uplift", version)

    with pytest.raises(SignatureError, match=rf"signed by key {stranger.key_id}, which is not trusted"):
        load_predictor(registry.uri, "uplift", ref=version, kind="uplift")
    trusting = Registry(registry.uri, trusted_keys=stranger_public)  # trusting that key instead
    assert trusting.verified_manifest("uplift", version).version == version


def test_forged_malformed_and_moved_signatures_are_refused(tmp_path):
    registry = Registry(str(tmp_path))
    version, _ = register_credit(registry)
    signature_file = tmp_path / "credit" / version / "manifest.sig"
    record = json.loads(signature_file.read_text())
    raw = bytearray(base64.b64decode(record["signature"]))
    raw[0] ^= 1
    signature_file.write_text(json.dumps(record | {"signature": base64.b64encode(bytes(raw)).decode()}))
    with pytest.raises(SignatureError, match="signature does not verify"):
        registry.verified_manifest("credit", version)
    signature_file.write_text("not json")
    with pytest.raises(SignatureError, match=r"manifest.sig is malformed"):
        load_predictor(registry.uri, "credit", ref=version)

    second, _ = register_credit(registry)  # its signed manifest copied over another version's
    shutil.copy(tmp_path / "credit" / second / "manifest.json", tmp_path / "credit" / version / "manifest.json")
    shutil.copy(tmp_path / "credit" / second / "manifest.sig", tmp_path / "credit" / version / "manifest.sig")
    with pytest.raises(SignatureError, match=rf"credit@{version}: holds the signed manifest of credit@{second}"):
        load_predictor(registry.uri, "credit", ref=version)


def test_a_signed_model_that_scores_the_probe_badly_is_not_served(tmp_path, uplift_model):
    registry = Registry(str(tmp_path))
    good, _ = register_credit(registry)
    broken, _ = register_credit(registry, nan_coefficient=True)  # signed by the training key, and broken
    with pytest.raises(ProbeFailedError, match=rf"credit@{broken}: default probabilities not finite within \[0, 1\]"):
        load_predictor(registry.uri, "credit", ref=broken, kind="credit")

    slot = ModelSlot("credit")
    slot.apply(ModelConfig(registry_uri=registry.uri, name="credit", version=good))
    slot.apply(ModelConfig(registry_uri=registry.uri, name="credit", version=broken))
    assert slot.served_version == good and "probe" in slot.load_error

    estimator, X = uplift_model
    files = estimator.to_files()
    header = json.loads(files["uplift_model.json"]) | {"family": "dr_learner", "params": {}}
    files |= {"uplift_model.json": json.dumps(header).encode(), "estimator.pkl": pickle.dumps(NanEffect())}
    nan_uplift = register_uplift(registry, UPLIFT_ESTIMATORS["dr_learner"](), X, files)
    with pytest.raises(ProbeFailedError, match=rf"uplift@{nan_uplift}: effects not finite on the probe rows"):
        load_predictor(registry.uri, "uplift", ref=nan_uplift, kind="uplift")


def test_the_app_refuses_to_deploy_a_refused_model_before_any_replica_starts(tmp_path, uplift_model):
    registry = Registry(str(tmp_path))
    good_credit, _ = register_credit(registry)
    broken_credit, _ = register_credit(registry, nan_coefficient=True)
    good_uplift = register_uplift(registry, *uplift_model)
    unsigned_uplift = register_uplift(registry, *uplift_model)
    (tmp_path / "uplift" / unsigned_uplift / "manifest.sig").unlink()

    def configs(credit: str, uplift: str):
        refs = {"credit_model": {"name": "credit", "ref": credit}, "uplift_model": {"name": "uplift", "ref": uplift}}
        return step_configs(AppArgs(registry_uri=registry.uri, expected_feature_set_version=FSV, **refs))

    assert configs(good_credit, good_uplift).credit["champion"].version == good_credit
    with pytest.raises(UserError, match=rf"credit model credit@{broken_credit}: cannot be served: ProbeFailedError"):
        configs(broken_credit, good_uplift)
    with pytest.raises(UserError, match=rf"uplift model uplift@{unsigned_uplift}: cannot be served: SignatureError"):
        configs(good_credit, unsigned_uplift)


@pytest.fixture
def settings_env(monkeypatch):
    """Set TALA_* variables for one test; the process-wide settings are re-read before and after."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_settings_name_the_keys(tmp_path, settings_env, other_key):
    private, public = generate_key_pair(tmp_path / "training-keys")
    settings_env.setenv("TALA_SIGNING_KEY", str(private))
    old_public = other_key[2]
    settings_env.setenv("TALA_TRUSTED_KEYS", f"{old_public}, {public}")
    get_settings.cache_clear()
    registry = Registry(str(tmp_path / "registry"))
    version, _ = register_credit(registry)
    assert registry.signer("credit", version) == load_signing_key(private).key_id
    assert signing.key_environment() == {"TALA_TRUSTED_KEYS": f"{old_public},{public}"}
    assert load_predictor(registry.uri, "credit", ref=version).version == version

    settings_env.setenv("TALA_TRUSTED_KEYS", str(old_public))  # a rotation that dropped the key
    get_settings.cache_clear()
    with pytest.raises(SignatureError, match="not trusted"):
        load_predictor(registry.uri, "credit", ref=version)

    settings_env.setenv("TALA_SIGNING_KEY", str(tmp_path / "missing.key"))
    get_settings.cache_clear()
    with pytest.raises(UserError, match=r"TALA_SIGNING_KEY: cannot read the private key .*missing.key"):
        register_credit(Registry(registry.uri))
    assert Registry(registry.uri).versions("credit") == [version], "no version claimed without a key"
    assert not (tmp_path / "missing.key").exists(), "a configured key is never made up"


def test_the_local_key_pair_is_made_once_on_first_use(tmp_path, settings_env):
    settings_env.setenv("HOME", str(tmp_path / "home"))
    with ThreadPoolExecutor(8) as pool:  # concurrent first uses agree on one pair
        key_ids = set(pool.map(lambda _: signing.configured_signing_key().key_id, range(16)))
    directory = tmp_path / "home" / ".tala-ray" / "keys"
    assert len(key_ids) == 1 and sorted(p.name for p in directory.iterdir()) == ["signing.key", "signing.pub"]
    assert stat.S_IMODE((directory / "signing.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert list(signing.configured_trusted_keys().keys) == list(key_ids)
    assert [p.name for p in directory.parent.iterdir()] == ["keys"], "no staging directory left behind"


def test_keys_init_makes_a_pair_and_never_overwrites_one(tmp_path):
    made = run_cli("keys", "init", "--dir", str(tmp_path / "keys"))
    assert made.returncode == 0 and f"TALA_SIGNING_KEY={tmp_path / 'keys' / 'signing.key'}" in made.stdout
    assert stat.S_IMODE((tmp_path / "keys" / "signing.key").stat().st_mode) == 0o600
    key = load_signing_key(tmp_path / "keys" / "signing.key")
    assert key.key_id in load_trusted_keys([tmp_path / "keys" / "signing.pub"]).keys
    again = run_cli("keys", "init", "--dir", str(tmp_path / "keys"))
    assert again.returncode == 2 and "exists" in again.stderr and again.stderr.count("\n") == 1
    assert load_signing_key(tmp_path / "keys" / "signing.key").key_id == key.key_id
