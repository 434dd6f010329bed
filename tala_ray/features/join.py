"""Raw rows joined to the applications of their applicant, on numpy columns."""

from __future__ import annotations

import numpy as np

from tala_ray.features.columns import Columns, take

APPLICATION_COLUMNS = ("_pos", "_app_ms", "_fx")


def join_applications(frame: Columns, apps: Columns) -> Columns:
    """`frame` inner-joined to `apps` on `applicant_id`, adding `_pos`, `_app_ms` and `_fx`; the rows come
    in `merge(how="inner")` order: `frame`'s order, each row's applications in their order."""
    keys, app_keys = frame["applicant_id"], apps["applicant_id"]
    order = np.argsort(app_keys, kind="stable")
    sorted_keys = app_keys[order]
    low, high = np.searchsorted(sorted_keys, keys, "left"), np.searchsorted(sorted_keys, keys, "right")
    counts = high - low
    left = np.repeat(np.arange(len(keys)), counts)
    right = order[np.repeat(low - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))]
    return take(frame, left) | {name: apps[name][right] for name in APPLICATION_COLUMNS}
