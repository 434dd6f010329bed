"""Fitted preprocessing of a feature frame, stored as JSON inside every credit-model artifact.

Numeric columns: missing values filled with the training median, then standardised; a missing
indicator is added for columns that had gaps in training. Categorical (string) columns: one-hot
over the (at most 50 most frequent) levels seen in training (any other level is all zeros), or integer codes for LightGBM.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from tala_ray.errors import UserError

MAX_LEVELS = 50  # more levels than this per categorical: the rarest ones are treated as unseen


class NumericColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    median: float
    mean: float
    std: float
    had_missing: bool


class CategoricalColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    levels: list[str]


class Preprocessor(BaseModel):
    """The learned state; `fit` builds it, `to_json`/`from_json` store it."""

    model_config = ConfigDict(extra="forbid")

    feature_names: list[str]
    numeric: list[NumericColumn]
    categorical: list[CategoricalColumn]

    @classmethod
    def fit(cls, features: pd.DataFrame, max_levels: int = MAX_LEVELS) -> "Preprocessor":
        """Learn medians, scales and levels (the `max_levels` most frequent per categorical)."""
        numeric, categorical = [], []
        for name in features.columns:
            column = features[name]
            if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
                raise UserError(f"features: column {name!r} is a date/time; give the model numbers derived from it")
            if is_categorical(column):
                counts = column.dropna().astype(str).value_counts()
                levels = sorted(counts.index[:max_levels])
                categorical.append(CategoricalColumn(name=name, levels=levels))
                continue
            values = column.astype("float64")
            median = float(values.median()) if values.notna().any() else 0.0
            filled = values.fillna(median)
            std = float(filled.std(ddof=0))
            numeric.append(
                NumericColumn(
                    name=name,
                    median=median,
                    mean=float(filled.mean()),
                    std=std if std > 0 else 1.0,
                    had_missing=bool(values.isna().any()),
                )
            )
        return cls(feature_names=list(features.columns), numeric=numeric, categorical=categorical)

    def check_columns(self, features: pd.DataFrame) -> None:
        missing = [name for name in self.feature_names if name not in features.columns]
        if missing:
            raise UserError(f"features: missing columns {missing} (the model was trained on {self.feature_names})")

    def dense_columns(self) -> list[tuple[str, str]]:
        """(output column, source feature) for every column of `transform_dense`."""
        columns: list[tuple[str, str]] = []
        for column in self.numeric:
            columns.append((column.name, column.name))
            if column.had_missing:
                columns.append((f"{column.name}__missing", column.name))
        for column in self.categorical:
            columns.extend((f"{column.name}={level}", column.name) for level in column.levels)
        return columns

    def transform_dense(self, features: pd.DataFrame) -> np.ndarray:
        """Standardised numerics, missing indicators and one-hot categoricals as float32."""
        self.check_columns(features)
        blocks = []
        if self.numeric:
            values = _float_matrix(features, [column.name for column in self.numeric])
            missing = np.isnan(values)
            medians, means, stds = (np.array([getattr(c, k) for c in self.numeric]) for k in ("median", "mean", "std"))
            scaled = (np.where(missing, medians, values) - means) / stds
            for i, column in enumerate(self.numeric):
                blocks.append(scaled[:, i])
                if column.had_missing:
                    blocks.append(missing[:, i].astype(np.float64))
        for column in self.categorical:
            values = _levels(features[column.name])
            blocks.extend((values == level).astype(np.float64) for level in column.levels)
        if not blocks:
            return np.zeros((len(features), 0), dtype=np.float32)
        return np.column_stack(blocks).astype(np.float32)

    def transform_coded(self, features: pd.DataFrame) -> pd.DataFrame:
        """Raw numerics (NaN kept) and categoricals as integer codes (unseen or missing: NaN), for LightGBM."""
        self.check_columns(features)
        out = {}
        for column in self.numeric:
            out[column.name] = pd.to_numeric(features[column.name], errors="coerce").astype("float64").to_numpy()
        for column in self.categorical:
            codes = {level: float(i) for i, level in enumerate(column.levels)}
            levels = features[column.name].astype("object").map(_as_level)
            out[column.name] = levels.map(codes).astype("float64").to_numpy()
        return pd.DataFrame(out, index=features.index)

    @property
    def coded_categoricals(self) -> list[str]:
        return [column.name for column in self.categorical]

    def to_json(self) -> bytes:
        return json.dumps(self.model_dump(), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Preprocessor":
        return cls.model_validate_json(data)


def is_categorical(column: pd.Series) -> bool:
    """String, object and category columns are categorical; everything else is numeric."""
    return not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def _float_matrix(features: pd.DataFrame, names: list[str]) -> np.ndarray:
    """The columns as a float64 matrix (non-numbers become NaN); one conversion when all are numeric."""
    subset = features[names]
    if all(isinstance(dtype, np.dtype) and dtype.kind in "fiub" for dtype in subset.dtypes):
        return subset.to_numpy(dtype=np.float64)
    return np.column_stack(
        [pd.to_numeric(subset[name], errors="coerce").astype("float64").to_numpy() for name in names]
    ).reshape(len(features), len(names))


def _levels(column: pd.Series) -> np.ndarray:
    """The column's values as levels (strings; missing stays missing), an object array."""
    return np.array([_as_level(value) for value in column.to_numpy(dtype=object)], dtype=object)


def _as_level(value: object) -> object:
    """Categorical values compare as strings (as in `fit`); missing stays missing."""
    return value if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
