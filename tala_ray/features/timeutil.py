"""Timestamps as int64 epoch milliseconds, whatever their pandas resolution or time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def epoch_ms(values: pd.Series) -> np.ndarray:
    """Epoch milliseconds (int64) of a datetime-like Series; naive values are taken as UTC."""
    stamps = pd.to_datetime(values, utc=True)
    return stamps.dt.tz_localize(None).to_numpy("datetime64[ms]").astype(np.int64)


def datetime_ms(value: datetime) -> int:
    """Epoch milliseconds of one datetime (exact integer arithmetic); a naive value is taken as UTC."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return (aware - _EPOCH) // _MS
