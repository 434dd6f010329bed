"""Raw rows joined to the applications of their applicant, on numpy columns."""

from __future__ import annotations

import numpy as np

from tala_ray.features.columns import Columns, take

APPLICATION_COLUMNS = ("_app_ms", "_fx")


def run_starts(keys: np.ndarray) -> np.ndarray:
    """Positions where a run of equal consecutive keys begins."""
    starts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    return np.concatenate(([0], starts)) if len(keys) else starts


def join_rows(keys: np.ndarray, app_keys: np.ndarray) -> tuple[np.ndarray | slice, np.ndarray]:
    """Row pairs (row of `keys`, row of `app_keys`) of the inner join on the key, in `merge(how="inner")`
    order: `keys`' order, each row's applications in their order. The rows of `keys` are `slice(None)`
    when each joins exactly one application (indexing then gives views, no copies). Each run of equal
    keys (rows grouped by applicant) is looked up once."""
    order = np.argsort(app_keys, kind="stable")
    sorted_keys = app_keys[order]
    starts = run_starts(keys)
    run_keys, run_lengths = keys[starts], np.diff(np.concatenate((starts, [len(keys)])))
    low, high = np.searchsorted(sorted_keys, run_keys, "left"), np.searchsorted(sorted_keys, run_keys, "right")
    if (high - low).max(initial=0) <= 1:  # no row joins more than one application
        matched = high > low
        left = slice(None) if matched.all() else np.flatnonzero(np.repeat(matched, run_lengths))
        return left, np.repeat(order[low[matched]], run_lengths[matched])
    low, counts = np.repeat(low, run_lengths), np.repeat(high - low, run_lengths)
    left = np.repeat(np.arange(len(keys)), counts)
    right = order[np.repeat(low - (np.cumsum(counts) - counts), counts) + np.arange(len(left))]
    return left, right


def join_applications(frame: Columns, apps: Columns) -> Columns:
    """`frame` inner-joined to `apps` on `applicant_id` (in `join_rows` order), adding the application's row
    position `_pos`, its time `_app_ms` and exchange rate `_fx`."""
    left, right = join_rows(frame["applicant_id"], apps["applicant_id"])
    return take(frame, left) | {"_pos": right} | {name: apps[name][right] for name in APPLICATION_COLUMNS}
