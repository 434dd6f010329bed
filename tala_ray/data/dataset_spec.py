"""Any tabular data source, no code change: a YAML dataset spec and its loader.

```yaml
path: loans.csv              # CSV or Parquet file/directory, local or URI; relative to the spec file
format: csv                  # optional: csv | parquet (default: from the path's extension)
id_column: loan_id           # optional (default: row number)
target:
  column: status
  bad_value: bad             # the value meaning "bad" / default (default: 1)
  # or a continuous outcome (amount repaid, days late): {column: days_late, type: continuous}
treatment_column: reminder   # optional, values 0/1 (or true/false)
features: all_others         # or a list of columns
types: {region: categorical, score: numeric}   # optional; the rest is inferred
```
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
from pyarrow import fs as pafs
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tala_ray.core.errors import UserError
from tala_ray.core.specs import load_yaml_model
from tala_ray.core.storage import is_uri, resolve_filesystem

ColumnType = Literal["numeric", "categorical"]
TargetType = Literal["binary", "continuous"]
REASON = "reason"


class TargetSpec(BaseModel):
    """The outcome: binary (1 = bad, the value `bad_value` names) or continuous (a number, in its units)."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(description="The outcome column.")
    type: TargetType = Field("binary", description="binary (bad / good) or continuous (amount repaid, days late).")
    bad_value: str | int | float | bool = Field(
        1, description="The value that means bad (default); every other value is good. Binary targets only."
    )

    @model_validator(mode="after")
    def _bad_value_is_binary(self) -> TargetSpec:
        if self.type == "continuous" and "bad_value" in self.model_fields_set:
            raise ValueError("target.bad_value: a continuous target has no bad value; drop it or use type: binary")
        return self


class DatasetSpec(BaseModel):
    """A tabular data source for training: where it is, what is the target, which columns are features."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    path: str = Field(description="CSV or Parquet file or directory (local path or URI).")
    format: Literal["csv", "parquet"] | None = Field(None, description="Default: from the path's extension.")
    id_column: str | None = None
    target: TargetSpec
    treatment_column: str | None = None
    features: Literal["all_others"] | list[str] = "all_others"
    types: dict[str, ColumnType] = Field(
        default_factory=dict, description="Declared column types; others are inferred."
    )

    @property
    def file_format(self) -> Literal["csv", "parquet"]:
        if self.format:
            return self.format
        return "csv" if self.path.lower().endswith((".csv", ".csv.gz")) else "parquet"


@dataclass(frozen=True)
class LoadedDataset:
    """Model inputs, target (binary: 1 = bad; continuous: float64), optional treatment, ids, and the rows set aside."""

    spec: DatasetSpec
    features: pd.DataFrame
    target: np.ndarray
    ids: np.ndarray
    treatment: np.ndarray | None
    feature_types: dict[str, ColumnType]
    quarantined: pd.DataFrame
    content_hash: str


def load_dataset_spec(path: str) -> DatasetSpec:
    """Read and validate a dataset spec YAML; a relative data path is taken relative to the spec file."""
    spec = load_yaml_model(path, DatasetSpec, "dataset spec")
    if not is_uri(spec.path) and not os.path.isabs(spec.path):
        spec = spec.model_copy(update={"path": os.path.join(os.path.dirname(os.path.abspath(path)), spec.path)})
    return spec


def _read_frame(spec: DatasetSpec) -> tuple[pd.DataFrame, str]:
    """The whole source as pandas, and a sha256 over its files' bytes."""
    filesystem, location = resolve_filesystem(spec.path)
    info = filesystem.get_file_info(location)
    if info.type == pafs.FileType.NotFound:
        raise UserError(f"dataset spec: path {spec.path!r} does not exist")
    files = (
        [location]
        if info.type == pafs.FileType.File
        else sorted(
            f.path
            for f in filesystem.get_file_info(pafs.FileSelector(location, recursive=True))
            if f.type == pafs.FileType.File
        )
    )
    digest = hashlib.sha256()
    for file in files:
        with filesystem.open_input_stream(file) as stream:
            digest.update(stream.read())
    try:
        if spec.file_format == "csv":
            with filesystem.open_input_stream(location) as stream:
                table = pacsv.read_csv(stream, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
        else:
            table = pads.dataset(location, filesystem=filesystem, format="parquet").to_table()
    except Exception as error:  # noqa: BLE001 - any parse failure is the user's file
        raise UserError(f"dataset spec: cannot read {spec.path!r} as {spec.file_format}: {error}") from None
    return table.to_pandas(), digest.hexdigest()


def _require_columns(spec: DatasetSpec, frame: pd.DataFrame) -> list[str]:
    named = {
        "target.column": spec.target.column,
        "id_column": spec.id_column,
        "treatment_column": spec.treatment_column,
    }
    for field, column in named.items():
        if column is not None and column not in frame.columns:
            raise UserError(
                f"dataset spec: {field} {column!r} is not a column of {spec.path!r} (columns: {list(frame.columns)})"
            )
    reserved = {c for c in named.values() if c is not None}
    features = [c for c in frame.columns if c not in reserved] if spec.features == "all_others" else spec.features
    for column in features:
        if column not in frame.columns:
            raise UserError(f"dataset spec: features lists {column!r}, which is not a column of {spec.path!r}")
        if column in reserved:
            raise UserError(f"dataset spec: features lists {column!r}, which is the target, id or treatment column")
    for column in spec.types:
        if column not in features:
            raise UserError(f"dataset spec: types names {column!r}, which is not a feature column")
    if not features:
        raise UserError("dataset spec: no feature columns")
    return list(features)


def _canonical(value: object) -> str:
    """Labels compared as text: `1`, `1.0` and `"1"` are one value, and so are `"bad"` and `"BAD"`."""
    if isinstance(value, bool | np.bool_):
        return str(value).lower()
    if isinstance(value, int | float | np.integer | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip().lower()


def _same_value(values: pd.Series, wanted: object) -> pd.Series:
    return values.map(_canonical) == _canonical(wanted)


def _binary_target(spec: DatasetSpec, target: pd.Series) -> np.ndarray:
    distinct = target.dropna().map(_canonical).unique()
    if len(distinct) > 2:
        shown = ", ".join(repr(v) for v in list(distinct)[:5])
        raise UserError(
            f"dataset spec: target column {spec.target.column!r} has {len(distinct)} distinct values ({shown}); "
            "expected two"
        )
    bad = _same_value(target, spec.target.bad_value)
    if not bad.any():
        raise UserError(
            f"dataset spec: target.bad_value {spec.target.bad_value!r} never occurs in column {spec.target.column!r} "
            f"(values: {', '.join(repr(v) for v in distinct)})"
        )
    return bad.to_numpy(dtype=np.int64)


def _continuous_target(spec: DatasetSpec, target: pd.Series) -> np.ndarray:
    numbers = pd.to_numeric(target.astype("object"), errors="coerce").astype(np.float64)
    unparsed = ~np.isfinite(numbers.to_numpy())
    if unparsed.any():
        raise UserError(
            f"dataset spec: target column {spec.target.column!r} is continuous (target.type) but holds "
            f"{target[unparsed].iloc[0]!r}, not a finite number"
        )
    if numbers.nunique() < 3:
        raise UserError(
            f"dataset spec: target column {spec.target.column!r} has {numbers.nunique()} distinct values; "
            "target.type continuous needs a number that varies (use type: binary for a two-valued outcome)"
        )
    return numbers.to_numpy()


def _typed_features(spec: DatasetSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, ColumnType]]:
    columns, types = {}, {}
    for column in frame.columns:
        values = frame[column]
        declared = spec.types.get(column)
        inferred: ColumnType = (
            "numeric" if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values) else "categorical"
        )
        kind = declared or inferred
        if kind == "numeric":
            numbers = pd.to_numeric(values.astype("object"), errors="coerce")
            unparsed = values.notna() & numbers.isna()
            if unparsed.any():
                raise UserError(
                    f"dataset spec: column {column!r} is declared numeric but holds {values[unparsed].iloc[0]!r}"
                )
            columns[column] = numbers.astype(np.float64)
        else:
            text = values.astype("object").where(values.notna(), None).map(lambda v: v if v is None else str(v))
            columns[column] = pd.array(text.to_numpy(dtype=object), dtype="str")
        types[column] = kind
    return pd.DataFrame(columns, index=frame.index), types


def load_dataset(spec: DatasetSpec) -> LoadedDataset:
    """Load the source: rows without a target value are quarantined (reason `missing_target`)."""
    frame, content_hash = _read_frame(spec)
    feature_columns = _require_columns(spec, frame)
    missing_target = frame[spec.target.column].isna()
    quarantined = frame.loc[missing_target].assign(**{REASON: "missing_target"})
    frame = frame.loc[~missing_target].reset_index(drop=True)
    if frame.empty:
        raise UserError(f"dataset spec: no rows with a value in target column {spec.target.column!r}")
    features, types = _typed_features(spec, frame[feature_columns])
    treatment = None
    if spec.treatment_column:
        values = frame[spec.treatment_column]
        ok = _same_value(values, 1) | _same_value(values, 0) | _same_value(values, True) | _same_value(values, False)
        if not ok.all():
            raise UserError(
                f"dataset spec: treatment column {spec.treatment_column!r} must hold 0/1, found {values[~ok].iloc[0]!r}"
            )
        treatment = (_same_value(values, 1) | _same_value(values, True)).to_numpy(dtype=np.int64)
    ids = frame[spec.id_column].to_numpy() if spec.id_column else np.arange(len(frame))
    return LoadedDataset(
        spec=spec,
        features=features,
        target=(_continuous_target if spec.target.type == "continuous" else _binary_target)(
            spec, frame[spec.target.column]
        ),
        ids=ids,
        treatment=treatment,
        feature_types=types,
        quarantined=quarantined.reset_index(drop=True),
        content_hash=content_hash,
    )
