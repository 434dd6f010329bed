"""Timestamps as int64 epoch milliseconds, whatever their pandas resolution or time zone."""

from __future__ import annotations

import numpy as np
import pandas as pd

DAY_MS = 86_400_000


def epoch_ms(values: pd.Series) -> np.ndarray:
    """Epoch milliseconds (int64) of a datetime-like Series; naive values are taken as UTC."""
    stamps = pd.to_datetime(values, utc=True)
    return stamps.dt.tz_localize(None).to_numpy("datetime64[ms]").astype(np.int64)
