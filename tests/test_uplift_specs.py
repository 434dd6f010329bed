"""Uplift experiment specs: every shipped one parses; mistakes name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tala_ray.core.errors import UserError
from tala_ray.policy.decision import PolicyParams
from tala_ray.policy.economics import Economics
from tala_ray.tuning.spec import load_experiment_spec
from tala_ray.tuning.uplift_families import UPLIFT_KINDS, hyperparameter_names

SHIPPED = sorted(Path(__file__).parent.parent.glob("experiments/uplift_*.yaml"))
SERVE_CONFIGS = sorted(Path(__file__).parent.parent.glob("serve_configs/*.yaml"))


def test_shipped_uplift_specs_parse_and_cover_every_family():
    specs = [load_experiment_spec(path) for path in SHIPPED]
    assert {spec.model.cohort for spec in specs} == {"experiment", "historical"}
    assert {spec.model.kind for spec in specs} >= {"dr_learner", "x_learner", "causal_forest", "linear_dml"}
    assert all(spec.model.kind in UPLIFT_KINDS and spec.mode == "max" for spec in specs)


def test_uplift_models_are_judged_under_the_economics_they_serve_under():
    served = {
        Economics(**PolicyParams.model_validate(app["args"]["policy"]).model_dump(include=set(Economics.model_fields)))
        for path in SERVE_CONFIGS
        for app in yaml.safe_load(path.read_text())["applications"]
    }
    assert served == {Economics()}
    assert {load_experiment_spec(path).model.economics for path in SHIPPED} == {Economics()}


def _write(tmp_path: Path, **changes: object) -> Path:
    raw = yaml.safe_load((Path(__file__).parent.parent / "experiments/uplift_xlearner.yaml").read_text())
    for dotted, value in changes.items():
        target = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            target = target[key]
        target[leaf] = value
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metric": "auc"}, "metric: auc does not fit model.kind x_learner"),
        ({"model__search_space": {"n_estimators": 10}}, "unknown hyperparameters ['n_estimators']"),
        ({"model__cohort": "pilot"}, "model.x_learner.cohort"),
        ({"model__overlap": {"low": 0.6}}, "model.x_learner.overlap.low"),
        ({"model__economics": {"intervention_cost": -1}}, "model.x_learner.economics.intervention_cost"),
        ({"model__treatment": "t"}, "model.x_learner.treatment: Extra inputs are not permitted"),
    ],
)
def test_mistakes_are_user_errors_naming_the_field(tmp_path, changes, message):
    with pytest.raises(UserError, match=None) as error:
        load_experiment_spec(_write(tmp_path, **changes))
    assert message in str(error.value)


def test_credit_family_refuses_an_uplift_metric(tmp_path):
    raw = yaml.safe_load((Path(__file__).parent.parent / "experiments/credit_logistic.yaml").read_text())
    path = tmp_path / "credit.yaml"
    path.write_text(yaml.safe_dump(raw | {"metric": "r_score"}))
    with pytest.raises(UserError, match="r_score does not fit model.kind logistic"):
        load_experiment_spec(path)


def test_hyperparameters_include_the_shared_nuisance_settings():
    assert {"nuisance_n_estimators", "cv", "n_estimators", "min_samples_leaf"} <= hyperparameter_names("causal_forest")
    assert "effect_modifiers" in hyperparameter_names("linear_dml") and "seed" not in hyperparameter_names("t_learner")


def test_tune_command_rejects_a_bad_uplift_spec_with_one_line(tmp_path):
    import subprocess
    import sys

    path = _write(tmp_path, model__search_space={"depth": 3})
    result = subprocess.run(
        [sys.executable, "-m", "tala_ray.cli", "tune", str(path), "--runs-root", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "unknown hyperparameters ['depth']" in result.stderr
    assert not (tmp_path / "runs").exists()
