"""Tables as plain numpy columns: the form the feature code computes on (no per-call pandas cost).

Times are int64 epoch milliseconds, numbers float64 (NaN when missing), strings object arrays
(None or NaN when missing), ids int64.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from tala_ray.features.timeutil import epoch_ms

Columns = dict[str, np.ndarray]
Kind = Literal["id", "time", "float", "str", "bool"]

# The raw columns `compute_features` reads from each table, and their kinds.
RAW_COLUMNS: dict[str, dict[str, Kind]] = {
    "applications": {
        "application_id": "id",
        "applicant_id": "id",
        "application_time": "time",
        "amount": "float",
        "term_days": "float",
    },
    "applicants": {
        "applicant_id": "id",
        "country": "str",
        "signup_time": "time",
        "device_os": "str",
        "device_price_usd": "float",
        "device_age_months": "float",
    },
    "events": {
        "applicant_id": "id",
        "event_time": "time",
        "event_type": "str",
        "amount": "float",
        "app_category": "str",
    },
    "loans": {
        "applicant_id": "id",
        "disbursed_time": "time",
        "due_time": "time",
        "amount": "float",
        "repaid": "bool",
        "days_late": "float",
    },
}


def row_count(columns: Columns) -> int:
    """Rows of the columns (0 for no columns)."""
    return len(next(iter(columns.values()))) if columns else 0


def take(columns: Columns, rows: np.ndarray) -> Columns:
    """The given rows (positions or a boolean mask) of every column."""
    return {name: values[rows] for name, values in columns.items()}


def _column(series: pd.Series, kind: Kind) -> np.ndarray:
    if kind == "time":
        return epoch_ms(series)
    if kind == "id":
        return series.to_numpy(dtype=np.int64)
    if kind == "float":
        return series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    if kind == "bool":
        return series.to_numpy(dtype=bool)
    return series.to_numpy(dtype=object)


def frame_columns(table: str, frame: pd.DataFrame) -> Columns:
    """The raw columns of one table (a DataFrame) that the feature code reads."""
    return {name: _column(frame[name], kind) for name, kind in RAW_COLUMNS[table].items()}
