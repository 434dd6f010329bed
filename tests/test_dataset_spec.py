"""Dataset specs: any CSV/Parquet source, its bad inputs, and `tala-ray data profile`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tala_ray.core.errors import UserError
from tala_ray.data.dataset_spec import load_dataset, load_dataset_spec
from tala_ray.data.profile import format_profile, profile_dataset

CSV = """id,region,income,score,status,reminder
1,north,1200,0.5,good,1
2,south,,0.7,bad,0
3,,800,0.1,good,1
4,north,950,,BAD,0
5,east,2000,0.9,,1
6,south,1500,0.3,good,0
"""


def write_spec(directory: Path, **spec) -> str:
    path = directory / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    (tmp_path / "loans.csv").write_text(CSV)
    return tmp_path


def test_good_bad_labels_categoricals_and_missing_values_load(csv_dir):
    spec = write_spec(
        csv_dir,
        path="loans.csv",
        id_column="id",
        target={"column": "status", "bad_value": "bad"},
        treatment_column="reminder",
    )
    loaded = load_dataset(load_dataset_spec(spec))
    assert list(loaded.ids) == [1, 2, 3, 4, 6]
    assert list(loaded.target) == [0, 1, 0, 1, 0]  # "BAD" matches "bad"
    assert list(loaded.treatment) == [1, 0, 1, 0, 0]
    assert loaded.feature_types == {"region": "categorical", "income": "numeric", "score": "numeric"}
    assert loaded.features["income"].dtype == np.float64 and np.isnan(loaded.features["income"].iloc[1])
    assert pd.api.types.is_string_dtype(loaded.features["region"]) and pd.isna(loaded.features["region"].iloc[2])
    assert loaded.quarantined["reason"].tolist() == ["missing_target"] and loaded.quarantined["id"].tolist() == [5]
    assert len(loaded.content_hash) == 64


def test_declared_types_and_listed_features_on_parquet(tmp_path):
    frame = pd.DataFrame(
        {"zone": [1, 2, 1, 3], "amount": ["10", "12.5", None, "7"], "y": [0, 1, 0, 0], "noise": [1, 2, 3, 4]}
    )
    frame.to_parquet(tmp_path / "data.parquet")
    spec = write_spec(
        tmp_path,
        path="data.parquet",
        target={"column": "y"},
        features=["zone", "amount"],
        types={"zone": "categorical", "amount": "numeric"},
    )
    loaded = load_dataset(load_dataset_spec(spec))
    assert list(loaded.features.columns) == ["zone", "amount"]
    assert loaded.features["zone"].tolist() == ["1", "2", "1", "3"]
    assert loaded.features["amount"].tolist()[:2] == [10.0, 12.5] and np.isnan(loaded.features["amount"].iloc[2])
    assert list(loaded.target) == [0, 1, 0, 0] and loaded.treatment is None and list(loaded.ids) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"path": "nowhere.csv", "target": {"column": "status"}}, r"path '.*nowhere.csv' does not exist"),
        ({"path": "loans.csv", "target": {"column": "outcome"}}, r"target.column 'outcome' is not a column"),
        ({"path": "loans.csv", "target": {"column": "region"}}, r"target column 'region' has 3 distinct values"),
        ({"path": "loans.csv", "target": {"column": "status", "bad_value": "late"}}, r"bad_value 'late' never occurs"),
        ({"path": "loans.csv", "target": {"column": "status"}, "features": ["income", "age"]}, r"features lists 'age'"),
        (
            {"path": "loans.csv", "target": {"column": "status", "bad_value": "bad"}, "types": {"region": "numeric"}},
            r"column 'region' is declared numeric but holds 'north'",
        ),
        ({"path": "loans.csv", "target": {"column": "status"}, "sheet": 1}, r"sheet: Extra inputs are not permitted"),
    ],
)
def test_bad_specs_raise_a_user_error_naming_the_problem(csv_dir, spec, message):
    with pytest.raises(UserError, match=message):
        load_dataset(load_dataset_spec(write_spec(csv_dir, **spec)))


def test_a_missing_spec_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        load_dataset_spec(str(tmp_path / "absent.yaml"))


def test_profile_reports_rows_target_rate_missing_share_and_cardinality(csv_dir):
    spec = write_spec(csv_dir, path="loans.csv", id_column="id", target={"column": "status", "bad_value": "bad"})
    profile = profile_dataset(load_dataset(load_dataset_spec(spec)))
    assert (
        profile.rows == 5 and profile.quarantined == {"missing_target": 1} and profile.target_rate == pytest.approx(0.4)
    )
    by_name = {c.name: c for c in profile.columns}
    assert by_name["region"].cardinality == 2 and by_name["region"].missing_share == pytest.approx(0.2)
    assert by_name["reminder"].kind == "numeric"
    text = format_profile(profile)
    assert "bad rate 40.00%" in text and "missing_target=1" in text


def test_cli_profile_prints_and_fails_in_one_line(csv_dir):
    good = write_spec(csv_dir, path="loans.csv", target={"column": "status", "bad_value": "bad"})

    def run(spec: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "tala_ray.cli", "data", "profile", spec], capture_output=True, text=True
        )

    result = run(good)
    assert result.returncode == 0 and "region" in result.stdout and "rows:         5" in result.stdout
    bad = write_spec(csv_dir, path="loans.csv", target={"column": "nope"})
    result = run(bad)
    assert result.returncode == 2 and result.stderr.strip().startswith("error: dataset spec: target.column 'nope'")
