"""The fixed probe input every model must score sanely before it is served (the load-time smoke test).

Three rows over the model's own feature columns, built from its fitted preprocessing (so they
need nothing stored beside the model and fit any feature set): a typical applicant (the training
medians, each categorical's first level), an applicant with every value missing, and one with
every number zero and categoricals at a level never seen in training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tala_ray.models.preprocessing import Preprocessor

PROBE_ROWS = ("typical", "all missing", "zeros, unseen levels")
UNSEEN_LEVEL = "__probe_unseen_level__"


def probe_features(feature_names: list[str], preprocessor: Preprocessor) -> pd.DataFrame:
    """The probe rows for a model reading `feature_names` through `preprocessor` (columns it does not
    read are all missing)."""
    medians = {column.name: column.median for column in preprocessor.numeric}
    levels = {column.name: column.levels for column in preprocessor.categorical}
    columns: dict[str, pd.Series] = {}
    for name in feature_names:
        if name in levels:
            first = levels[name][0] if levels[name] else None
            columns[name] = pd.Series([first, None, UNSEEN_LEVEL], dtype=object)
        else:
            columns[name] = pd.Series([medians.get(name, np.nan), np.nan, 0.0], dtype=np.float64)
    return pd.DataFrame(columns)


def bad_values(values: np.ndarray, low: float = -np.inf, high: float = np.inf) -> str | None:
    """Why `values` (one per probe row) are not a sane answer, or None: each must be finite and within [low, high]."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] != len(PROBE_ROWS):
        return f"{values.shape[0]} values for {len(PROBE_ROWS)} rows"
    flat = values.reshape(len(PROBE_ROWS), -1)
    bad = ~np.isfinite(flat).all(axis=1) | (flat < low).any(axis=1) | (flat > high).any(axis=1)
    if not bad.any():
        return None
    shown = "; ".join(f"{PROBE_ROWS[i]}: {np.array2string(flat[i][:3], precision=4)}" for i in np.flatnonzero(bad))
    bounds = "" if np.isinf(low) and np.isinf(high) else f" within [{low:g}, {high:g}]"
    return f"not finite{bounds} on the probe rows ({shown})"
