"""The ONE reader of a synthetic world's truth table (evaluation only: no model is trained on it).

The truth holds, per application, the default probability without and with the intervention
(`pd_control`, `pd_treated`) and their difference `true_uplift`, the repayment gain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow.dataset as pads

from tala_ray.core.errors import UserError
from tala_ray.core.storage import join_path, resolve_filesystem

TRUTH_TABLE = "truth"
TRUTH_COLUMNS = ("pd_control", "pd_treated", "true_uplift")


def read_truth(world: str, ids: np.ndarray, columns: Sequence[str] = TRUTH_COLUMNS) -> pd.DataFrame:
    """The truth of the applications `ids`, in that order (indexed by application_id).

    Raises UserError when some application has no truth (the world is not the one the data came from).
    """
    filesystem, root = resolve_filesystem(world)
    truth = (
        pads.dataset(join_path(root, TRUTH_TABLE), filesystem=filesystem, format="parquet")
        .to_table(columns=["application_id", *columns])
        .to_pandas()
        .set_index("application_id")
        .reindex(ids)
    )
    if truth.isna().any(axis=None):
        raise UserError(
            f"data.world: {world!r} has no truth for some applications; is it the world the features came from?"
        )
    return truth


def true_default_probability(world: str, ids: np.ndarray, treatment: np.ndarray) -> np.ndarray:
    """Each application's true PD under the treatment it actually got (the best possible credit score)."""
    truth = read_truth(world, ids, ("pd_control", "pd_treated"))
    return np.where(treatment == 1, truth["pd_treated"].to_numpy(), truth["pd_control"].to_numpy())


def true_effects(world: str, ids: np.ndarray) -> np.ndarray:
    """Each application's `true_uplift` (pd_control - pd_treated): what the intervention lowers its PD by."""
    return read_truth(world, ids, ("true_uplift",))["true_uplift"].to_numpy(dtype=np.float64)
