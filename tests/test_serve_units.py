"""Serving pieces that need no cluster: auth, app args, the Serve config files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from tala_ray.core.errors import UserError
from tala_ray.serving.args import AppArgs
from tala_ray.serving.auth import is_authorised, load_api_keys
from tala_ray.serving.launch import load_serve_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(REPO.glob("serve_configs/*.yaml"))
KEY = "k" * 32


def test_keys_from_file_allow_rotation_and_refuse_short_or_missing(tmp_path, monkeypatch):
    key_file = tmp_path / "keys"
    key_file.write_text(f"{KEY}\n\n{'n' * 20}\n")
    keys = load_api_keys("UNUSED_ENV", str(key_file))
    assert is_authorised(f"Bearer {KEY}", keys)
    assert is_authorised(f"bearer {'n' * 20}", keys)
    assert not is_authorised(f"Bearer {KEY}x", keys)
    assert not is_authorised(KEY, keys)
    assert not is_authorised(None, keys)
    assert not is_authorised("Basic " + KEY, keys)
    monkeypatch.delenv("TALA_TEST_KEY", raising=False)
    with pytest.raises(UserError, match="no API key"):
        load_api_keys("TALA_TEST_KEY", None)
    monkeypatch.setenv("TALA_TEST_KEY", "short")
    with pytest.raises(UserError, match="at least 16"):
        load_api_keys("TALA_TEST_KEY", None)
    monkeypatch.setenv("TALA_TEST_KEY", KEY)
    assert load_api_keys("TALA_TEST_KEY", None) == (KEY.encode(),)
    with pytest.raises(UserError, match="api_key_file"):
        load_api_keys("TALA_TEST_KEY", str(tmp_path / "missing"))


def test_app_args_reject_mistakes_naming_the_field():
    base = {"registry_uri": "r", "credit_model": {"name": "credit"}, "uplift_model": {"name": "uplift"}}
    assert AppArgs.model_validate(base).credit_model.ref == "champion"
    with pytest.raises(ValidationError, match="credit_challenger"):
        AppArgs.model_validate({**base, "challenger_mode": "canary"})
    with pytest.raises(ValidationError, match="canary_weight"):
        AppArgs.model_validate({**base, "canary_weight": 1.5})
    with pytest.raises(ValidationError, match="registry_url"):
        AppArgs.model_validate({**base, "registry_url": "x"})


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_serve_config_parses_and_binds_loopback(path):
    raw = yaml.safe_load(path.read_text())
    assert raw["http_options"]["host"] == "127.0.0.1"
    config = load_serve_config(path)
    for application in config.applications:
        deployments = {d.name: d for d in application.deployments}
        assert deployments, "every deployment's scaling lives in the file"
        for deployment in deployments.values():
            assert deployment.autoscaling_config and deployment.max_ongoing_requests


def test_bad_config_is_a_user_error_naming_the_field(tmp_path):
    raw = yaml.safe_load(CONFIGS[0].read_text())
    raw["applications"][0]["args"]["policy"]["loss_given_default"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=r"applications\[0\]\.args\.policy\.loss_given_default"):
        load_serve_config(bad)


def test_serve_command_reports_a_bad_config_in_one_line(tmp_path):
    import subprocess
    import sys

    raw = yaml.safe_load(CONFIGS[0].read_text())
    raw["applications"][0]["args"]["challenger_mode"] = "canary"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    result = subprocess.run(
        [sys.executable, "-m", "tala_ray.cli", "serve", str(bad), "--registry-uri", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: applications[0].args: ")
    assert "credit_challenger" in result.stderr


@pytest.mark.parametrize(
    ("deployment", "user_config", "message"),
    [
        ("DecisionPolicy", {"fee_rate_per_30_days": -1}, r"deployments\[4\]\.user_config\.fee_rate_per_30_days"),
        ("DecisionIngress", {"challenger_mode": "canary"}, r"challenger_mode: needs args\.credit_challenger"),
        ("DecisionIngress", {"canary_weight": 2}, r"deployments\[0\]\.user_config\.canary_weight"),
        (
            "DecisionIngress",
            {"batching": {"max_batch_size": 0}},
            r"deployments\[0\]\.user_config\.batching\.max_batch_size",
        ),
        ("FeatureTransform", {"batching": {"max_batch_size": 16}}, "'FeatureTransform' takes no user_config"),
        ("Elsewhere", {"anything": 1}, "takes no user_config"),
    ],
)
def test_live_user_config_overrides_are_validated(tmp_path, deployment, user_config, message):
    raw = yaml.safe_load((REPO / "serve_configs" / "credit_decision_composed.yaml").read_text())
    deployments = raw["applications"][0]["deployments"]
    if deployment not in {entry["name"] for entry in deployments}:
        deployments.append({"name": deployment})
    for entry in deployments:
        if entry["name"] == deployment:
            entry["user_config"] = user_config
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=message):
        load_serve_config(path)


def test_a_fused_graph_takes_user_config_on_the_ingress_only(tmp_path):
    raw = yaml.safe_load((REPO / "serve_configs" / "credit_decision.yaml").read_text())
    assert raw["applications"][0]["args"]["graph"] == "fused"
    raw["applications"][0]["deployments"].append(
        {"name": "DecisionPolicy", "user_config": {"fee_rate_per_30_days": 0.1}}
    )
    path = tmp_path / "fused.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=r"deployments\[1\]\.user_config: with args.graph 'fused' only DecisionIngress"):
        load_serve_config(path)


def test_haproxy_environment_is_set_without_overriding_the_users_choice(monkeypatch):
    from tala_ray.serving.launch import HAPROXY_ENVIRONMENT, use_haproxy_environment

    for name in HAPROXY_ENVIRONMENT:  # registered with monkeypatch, so what the call sets is undone after the test
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_SERVE_USE_GRPC_BY_DEFAULT", "0")
    notes = use_haproxy_environment(None)
    assert os.environ["RAY_SERVE_ENABLE_HA_PROXY"] == "1" and os.environ["RAY_SERVE_USE_GRPC_BY_DEFAULT"] == "0"
    assert len(notes) == 1 and "every interface" in notes[0]
    assert any("existing cluster" in note for note in use_haproxy_environment("ray://head:10001"))
