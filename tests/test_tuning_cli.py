"""`tala-ray tune` and `tala-ray models` from the command line (no Ray cluster needed here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_registry import register_model

from tala_ray.core.registry import Registry


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tala_ray.cli", *args], capture_output=True, text=True, timeout=300)


def test_tune_rejects_a_bad_spec_with_one_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text((Path(__file__).parent.parent / "experiments" / "credit_mlp.yaml").read_text() + "colour: blue\n")
    result = run_cli("tune", str(spec), "--runs-root", str(tmp_path / "runs"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "colour: Extra inputs are not permitted" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_tune_refuses_resume_and_overwrite_together(tmp_path):
    spec = Path(__file__).parent.parent / "experiments" / "credit_mlp.yaml"
    result = run_cli("tune", str(spec), "--resume", "--overwrite")
    assert result.returncode == 2 and "choose one" in result.stderr


def test_models_list_show_promote_compare(tmp_path):
    uri = str(tmp_path / "reg")
    registry = Registry(uri)
    register_model(registry, family="logistic", auc=0.71)
    register_model(registry, family="gbm", auc=0.78)

    listing = run_cli("models", "list", "--registry", uri)
    assert listing.returncode == 0
    assert "pd@1\tcredit/logistic\tauc=0.7100" in listing.stdout and "pd@2\tcredit/gbm\tauc=0.7800" in listing.stdout

    promoted = run_cli("models", "promote", "pd", "2", "--alias", "champion", "--registry", uri)
    assert promoted.returncode == 0 and registry.aliases("pd") == {"champion": "2"}
    assert run_cli("models", "promote", "pd", "9", "--registry", uri).returncode == 2
    assert run_cli("models", "promote", "pd", "1", "--alias", "prod", "--registry", uri).returncode == 2

    shown = run_cli("models", "show", "pd@champion", "--registry", uri)
    payload = json.loads(shown.stdout)
    assert payload["version"] == "2" and payload["family"] == "gbm" and "model.txt" in payload["files"]

    compared = run_cli("models", "compare", "pd@1", "pd@champion", "--registry", uri)
    auc_row = next(line for line in compared.stdout.splitlines() if line.startswith("auc "))
    assert auc_row.split()[1:] == ["0.7100", "0.7800"]

    missing = run_cli("models", "show", "nope", "--registry", uri)
    assert missing.returncode == 2 and "not in the registry" in missing.stderr
