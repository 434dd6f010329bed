"""Every experiment YAML in the repo parses; bad specs fail with errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tala_ray.core.errors import UserError
from tala_ray.tuning.space import to_tune_space
from tala_ray.tuning.spec import ExperimentSpec, load_experiment_spec

EXPERIMENTS = sorted((Path(__file__).parent.parent / "experiments").glob("*.yaml"))
CREDIT_SPEC = Path(__file__).parent.parent / "experiments" / "credit_gbm.yaml"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_experiment_parses(path):
    spec = load_experiment_spec(path)
    assert spec.trials >= 1 and spec.model.search_space
    to_tune_space(spec.model.search_space)


def test_the_three_credit_families_ship():
    kinds = {load_experiment_spec(p).model.kind for p in EXPERIMENTS if p.name.startswith("credit_")}
    assert {"logistic", "gbm", "mlp"} <= kinds


def write_variant(tmp_path, change) -> Path:
    raw = yaml.safe_load(CREDIT_SPEC.read_text())
    change(raw)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(trails=3), "trails: Extra inputs are not permitted"),
        (lambda s: s.update(trials="many"), "trials: Input should be a valid integer"),
        (lambda s: s["model"].update(search_space={}), "search_space: Dictionary should have at least 1 item"),
        (lambda s: s["model"]["search_space"].update(depth={"randint": [1, 5]}), "unknown hyperparameters ['depth']"),
        (
            lambda s: s["model"]["search_space"].update(learning_rate={"loguniform": [0.1, 0.01]}),
            "low must be below high",
        ),
        (lambda s: s["model"].update(kind="svm"), "model: Input tag 'svm' found using 'kind' does not match"),
        (lambda s: s.update(mode="min"), "mode: auc is better when larger"),
        (lambda s: s["split"].update(test_fraction=0.5, valid_fraction=0.45), "at least 10% for training"),
        (lambda s: s.update(metric="accuracy"), "metric: Input should be"),
    ],
)
def test_bad_specs_name_the_field(tmp_path, change, message):
    with pytest.raises(UserError) as error:
        load_experiment_spec(write_variant(tmp_path, change))
    assert message in str(error.value)
    assert "spec.yaml" in str(error.value)


def test_unreadable_and_non_mapping_specs(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        load_experiment_spec(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="mapping"):
        load_experiment_spec(tmp_path / "list.yaml")


def test_search_space_becomes_tune_domains():
    from ray.tune.search.sample import Categorical, Float, Integer

    spec = ExperimentSpec.model_validate(yaml.safe_load(CREDIT_SPEC.read_text()))
    space = to_tune_space(spec.model.search_space)
    assert isinstance(space["n_estimators"], Categorical)
    assert isinstance(space["learning_rate"], Float) and isinstance(space["num_leaves"], Integer)
    assert space["report_every"] == 50
    # randint is inclusive in the YAML: [4, 15] samples 4..15.
    samples = {space["num_leaves"].sample() for _ in range(2000)}
    assert min(samples) == 4 and max(samples) == 15
