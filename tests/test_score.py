"""`tala-ray score`: a whole book decided on a real local Ray cluster equals what the in-process
decision service answers for the same applications; a missing model, a feature-set mismatch and a
bad path stop the command with one line and exit code 2, before Ray starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pads
import pytest
import yaml
from fastapi.testclient import TestClient

from tala_ray.core.registry import ArtifactMetadata, Registry
from tala_ray.features.build import build_feature_table
from tala_ray.features.definitions import FEATURE_NAMES, feature_set_version
from tala_ray.features.table import read_feature_table
from tala_ray.jobs.score import DECISIONS_DIR, read_score_manifest, score_book, spec_from_serve_config
from tala_ray.models.credit import LogisticCreditModel
from tala_ray.models.uplift import TLearnerUplift
from tala_ray.serving.inprocess import create_app
from tala_ray.traffic.replay import read_world_tables, request_payload

pytestmark = pytest.mark.ray

SERVE_CONFIG = Path(__file__).resolve().parents[1] / "serve_configs" / "credit_decision.yaml"
CREDIT, UPLIFT = "credit_pd", "uplift"  # the names the serve configs serve


def register(registry: Registry, table: pd.DataFrame, fsv: str) -> None:
    """A logistic champion and a small T-learner uplift champion, trained on `table`."""
    credit = LogisticCreditModel().fit(table[FEATURE_NAMES], table["defaulted"].to_numpy())
    meta = ArtifactMetadata(kind="credit", family="logistic", feature_set_version=fsv, feature_names=FEATURE_NAMES)
    registry.set_alias(CREDIT, "champion", registry.register(CREDIT, credit.to_files(), meta).version)
    uplift = TLearnerUplift(nuisance_n_estimators=30, cv=2)
    uplift.fit(1 - table["defaulted"].to_numpy(), table["treatment"].to_numpy(), X=table[FEATURE_NAMES])
    meta = ArtifactMetadata(kind="uplift", family=uplift.family, feature_set_version=fsv, feature_names=FEATURE_NAMES)
    registry.set_alias(UPLIFT, "champion", registry.register(UPLIFT, uplift.to_files(), meta).version)


@pytest.fixture(scope="module")
def book(small_world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book") / "features"
    build_feature_table(str(small_world), str(out), engine="ray")
    return out


@pytest.fixture(scope="module")
def registry(book, tmp_path_factory) -> Registry:
    registry = Registry(str(tmp_path_factory.mktemp("registry")))
    register(registry, read_feature_table(str(book)).iloc[:1500], feature_set_version())
    return registry


@pytest.fixture(scope="module")
def scored(book, registry, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scored") / "decisions"
    spec = spec_from_serve_config(
        str(SERVE_CONFIG), str(book), str(out), registry_uri=registry.uri, batch_size=700, actors=2
    )
    score_book(spec)
    return out


def test_every_application_is_decided_with_the_pinned_champions(scored, book):
    manifest = read_score_manifest(str(scored))
    decided = pads.dataset(scored / DECISIONS_DIR, format="parquet").to_table().to_pandas()
    assert sorted(decided["application_id"]) == sorted(read_feature_table(str(book))["application_id"])
    assert manifest.rows == len(decided) == 4_000 and manifest.actors == 2
    assert manifest.decisions == decided["decision"].value_counts().sort_index().to_dict()
    assert set(manifest.decisions) == {"approve", "decline"}
    assert (decided["credit_model_version"] == manifest.credit_model.version).all()
    assert (decided["uplift_model_version"] == manifest.uplift_model.version).all()
    declined = decided["decision"] == "decline"
    assert decided.loc[declined, "reason_codes"].map(len).gt(0).all()
    assert decided.loc[~declined, "reason_codes"].map(len).eq(0).all()


def test_the_book_is_decided_as_the_in_process_service_decides(scored, registry, small_world):
    """The service computes the features from the raw records (they agree with the table's to 1e-12)."""
    world = read_world_tables(str(small_world))
    sample = world["applications"].sort_values("application_id").iloc[2000:2080].reset_index(drop=True)
    policy = yaml.safe_load(SERVE_CONFIG.read_text())["applications"][0]["args"]["policy"]
    client = TestClient(create_app(registry=registry.uri, credit_model=CREDIT, policy=policy))
    bodies = [request_payload(world, row) for _, row in sample.iterrows()]
    served = client.post("/v1/decisions/batch", json={"applications": bodies}).json()["decisions"]
    rows = pads.dataset(scored / DECISIONS_DIR, format="parquet").to_table().to_pylist()
    by_id = {row["application_id"]: row for row in rows}
    batch = [by_id[application_id] for application_id in sample["application_id"]]

    assert {d["decision"] for d in served} == {"approve", "decline"}, "the sample should exercise both outcomes"
    for field in ("decision", "intervention"):
        assert [b[field] for b in batch] == [s[field] for s in served], field
    for field in ("limit", "default_probability", "uplift", "expected_profit"):
        assert [b[field] for b in batch] == pytest.approx([s[field] for s in served], rel=1e-9, abs=1e-9), field
    for b, s in zip(batch, served, strict=True):
        assert [(r["code"], r["text"], list(r["features"])) for r in b["reason_codes"]] == [
            (r["code"], r["text"], r["features"]) for r in s["reason_codes"]
        ]
        assert [r["contribution"] for r in b["reason_codes"]] == pytest.approx(
            [r["contribution"] for r in s["reason_codes"]], rel=1e-9, abs=1e-12
        )
        versions = s["model_versions"]
        assert (b["credit_model_version"], b["uplift_model_version"]) == (versions["credit"], versions["uplift"])


def run_score(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tala_ray.cli", "score", "--serve-config", str(SERVE_CONFIG), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def stale_registry(book, tmp_path_factory) -> Registry:
    """Champions trained on another feature-set version than the table's."""
    registry = Registry(str(tmp_path_factory.mktemp("stale")))
    register(registry, read_feature_table(str(book)).iloc[:600], "fs-0123456789abcdef")
    return registry


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing model", "model 'credit_pd': not in the registry"),
        ("feature-set mismatch", "trained on feature set 'fs-0123456789abcdef'"),
        ("bad features path", "no feature table at"),
        ("bad output URI", "--out 'nosuchscheme://bucket/out': cannot open it"),
    ],
)
def test_bad_inputs_stop_the_command_in_one_line(case, expected, book, registry, stale_registry, tmp_path):
    features, out, registry_uri = str(book), str(tmp_path / "out"), registry.uri
    if case == "missing model":
        registry_uri = str(tmp_path / "empty-registry")
    elif case == "feature-set mismatch":
        registry_uri = stale_registry.uri
    elif case == "bad features path":
        features = str(tmp_path / "no-such-table")
    else:
        out = "nosuchscheme://bucket/out"
    result = run_score("--features", features, "--out", out, "--registry-uri", registry_uri)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and expected in lines[-1], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Started a local Ray instance" not in result.stderr
