"""Fitted preprocessing of a feature frame, stored as JSON inside every credit-model artifact.

Numeric columns: missing values filled with the training median, then standardised; a missing
indicator is added for columns that had gaps in training. Categorical (string) columns: one-hot
over the (at most 50 most frequent) levels seen in training (any other level is all zeros), or integer
codes for LightGBM.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from tala_ray.core.errors import UserError
from tala_ray.features.columns import row_count

MAX_LEVELS = 50  # more levels than this per categorical: the rarest ones are treated as unseen

# What the fitted preprocessing reads: a frame (training, evaluation) or numpy columns by name
# (serving: no per-call pandas cost, which dominates a one-row prediction).
FeatureBatch = pd.DataFrame | Mapping[str, np.ndarray]


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
    def fit(cls, features: pd.DataFrame, max_levels: int = MAX_LEVELS) -> Preprocessor:
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

    def check_columns(self, features: FeatureBatch) -> None:
        missing = missing_columns(features, self.feature_names)
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

    def transform_dense(self, features: FeatureBatch) -> np.ndarray:
        """Standardised numerics, missing indicators and one-hot categoricals as float32."""
        return self.dense(self.prepare(features))

    def transform_coded(self, features: pd.DataFrame) -> pd.DataFrame:
        """Raw numerics (NaN kept) and categoricals as integer codes (unseen or missing: NaN), for LightGBM."""
        names = list(self.layout_.coded_names)
        return pd.DataFrame(self.coded(self.prepare(features)), columns=names, index=features.index)

    def prepare(self, features: FeatureBatch) -> PreparedFeatures:
        """Read the batch once: numerics as one float64 matrix, each categorical as an array of levels."""
        self.check_columns(features)
        names = self.layout_.numeric_names
        numeric = (
            _float_matrix(features, names)
            if isinstance(features, pd.DataFrame)
            else _float_matrix_of_columns(features, names)
        )
        levels = [_levels(np.asarray(features[column.name], dtype=object)) for column in self.categorical]
        return PreparedFeatures(numeric=numeric, levels=levels)

    def dense(self, prepared: PreparedFeatures) -> np.ndarray:
        """`transform_dense` of a prepared frame (C-ordered float32, columns as `dense_columns`)."""
        layout, values = self.layout_, prepared.numeric
        out = np.zeros((values.shape[0], layout.dense_width))
        if self.numeric:
            missing = np.isnan(values)
            out[:, layout.scaled_at] = (np.where(missing, layout.medians, values) - layout.means) / layout.stds
            out[:, layout.indicator_at] = missing[:, layout.indicator_of]
        for levels, position in zip(prepared.levels, layout.level_positions, strict=True):
            _set_ones(out, [position.get(level) for level in levels])
        return out.astype(np.float32)

    def coded(self, prepared: PreparedFeatures) -> np.ndarray:
        """`transform_coded` of a prepared frame as a float64 matrix (numerics, then categorical codes)."""
        codes = [
            np.array([code.get(level, np.nan) for level in levels], dtype=np.float64)
            for levels, code in zip(prepared.levels, self.layout_.level_codes, strict=True)
        ]
        return np.column_stack([prepared.numeric, *codes]) if codes else prepared.numeric

    @cached_property
    def layout_(self) -> _Layout:
        """Constant arrays of the fitted state, built once per preprocessor (never stored)."""
        return _Layout.of(self)

    @property
    def coded_categoricals(self) -> list[str]:
        return [column.name for column in self.categorical]

    def to_json(self) -> bytes:
        return json.dumps(self.model_dump(), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Preprocessor:
        return cls.model_validate_json(data)


def missing_columns(features: FeatureBatch, names: list[str]) -> list[str]:
    """The `names` that are not columns of the batch (cheap when the columns are exactly `names`)."""
    present = features.columns.tolist() if isinstance(features, pd.DataFrame) else list(features)
    if present == names:
        return []
    have = set(present)
    return [name for name in names if name not in have]


def is_categorical(column: pd.Series) -> bool:
    """String, object and category columns are categorical; everything else is numeric."""
    return not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def _float_matrix(features: pd.DataFrame, names: list[str]) -> np.ndarray:
    """The columns as a float64 matrix (non-numbers become NaN); one conversion when all are numeric."""
    where = {name: i for i, name in enumerate(features.columns.tolist())}
    positions = [where[name] for name in names]
    dtypes = features.dtypes.tolist()
    if all(isinstance(dtypes[i], np.dtype) and dtypes[i].kind in "fiub" for i in positions):
        return features.take(positions, axis=1).to_numpy(dtype=np.float64)
    return np.column_stack(
        [pd.to_numeric(features[name], errors="coerce").astype("float64").to_numpy() for name in names]
    ).reshape(len(features), len(names))


def _float_matrix_of_columns(columns: Mapping[str, np.ndarray], names: list[str]) -> np.ndarray:
    """Numpy columns as a float64 matrix (non-numbers become NaN)."""
    if not names:
        return np.empty((row_count(columns), 0))
    return np.column_stack([_float_column(columns[name]) for name in names])


def _float_column(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").astype("float64").to_numpy()


def _levels(values: np.ndarray) -> np.ndarray:
    """The values (an object array) as levels (strings; missing stays missing), an object array."""
    return np.array([_as_level(value) for value in values], dtype=object)


def _as_level(value: object) -> object:
    """Categorical values compare as strings (as in `fit`); missing stays missing."""
    return value if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


@dataclass(frozen=True)
class PreparedFeatures:
    """A feature frame read once (`Preprocessor.prepare`): what `dense` and `coded` are built from."""

    numeric: np.ndarray  # (n, numeric columns) float64, NaN where missing or not a number
    levels: list[np.ndarray]  # per categorical column, its values as levels (object array)


@dataclass(frozen=True)
class _Layout:
    """Where each fitted column lands in the dense and coded outputs, and the numerics' constants."""

    numeric_names: list[str]
    medians: np.ndarray
    means: np.ndarray
    stds: np.ndarray
    scaled_at: np.ndarray  # dense column of each numeric's standardised value
    indicator_of: np.ndarray  # numeric index of each missing indicator
    indicator_at: np.ndarray  # dense column of each missing indicator
    level_positions: list[dict[str, int]]  # per categorical: level -> dense column
    level_codes: list[dict[str, float]]  # per categorical: level -> LightGBM code
    dense_width: int
    dense_sources: tuple[str, ...]  # source feature of each dense column
    coded_names: tuple[str, ...]  # the columns of `coded`

    @classmethod
    def of(cls, preprocessor: Preprocessor) -> _Layout:
        numeric, scaled_at, indicator_of, indicator_at, width = preprocessor.numeric, [], [], [], 0
        for i, column in enumerate(numeric):  # the order of `dense_columns`
            scaled_at.append(width)
            width += 1
            if column.had_missing:
                indicator_of.append(i)
                indicator_at.append(width)
                width += 1
        level_positions = []
        for column in preprocessor.categorical:
            level_positions.append({level: width + j for j, level in enumerate(column.levels)})
            width += len(column.levels)
        return cls(
            numeric_names=[column.name for column in numeric],
            medians=np.array([column.median for column in numeric], dtype=np.float64),
            means=np.array([column.mean for column in numeric], dtype=np.float64),
            stds=np.array([column.std for column in numeric], dtype=np.float64),
            scaled_at=np.array(scaled_at, dtype=np.intp),
            indicator_of=np.array(indicator_of, dtype=np.intp),
            indicator_at=np.array(indicator_at, dtype=np.intp),
            level_positions=level_positions,
            level_codes=[
                {level: float(i) for i, level in enumerate(column.levels)} for column in preprocessor.categorical
            ],
            dense_width=width,
            dense_sources=tuple(source for _, source in preprocessor.dense_columns()),
            coded_names=tuple(column.name for column in numeric) + tuple(preprocessor.coded_categoricals),
        )


def _set_ones(out: np.ndarray, columns: list[int | None]) -> None:
    """Set out[row, column] = 1 for every row whose column is known (one-hot of one categorical)."""
    rows = [row for row, column in enumerate(columns) if column is not None]
    out[rows, [columns[row] for row in rows]] = 1.0
