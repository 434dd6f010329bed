"""The ONE reader of a synthetic world's truth table (evaluation only: no model is trained on it).

The truth holds, per application, the default probability without and with the intervention
(`pd_control`, `pd_treated`) and their difference `true_uplift`, the repayment gain. A world with
several arms adds each arm's default probability (`pd_<arm>`); a world with a continuous outcome
adds its expected value under every option (`expected_<outcome>_<option>`). Column names come from
`tala_ray.data.schema.truth_pd_column` and `truth_expected_column`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow.dataset as pads

from tala_ray.core.errors import UserError
from tala_ray.core.storage import join_path, resolve_filesystem
from tala_ray.data.schema import INTERVENTION, NO_INTERVENTION, truth_expected_column, truth_pd_column

TRUTH_TABLE = "truth"
TRUTH_COLUMNS = ("pd_control", "pd_treated", "true_uplift")
DEFAULT_TARGET = "defaulted"


def read_truth(world: str, ids: np.ndarray, columns: Sequence[str] = TRUTH_COLUMNS) -> pd.DataFrame:
    """The truth of the applications `ids`, in that order (indexed by application_id).

    Raises UserError when some application has no truth (the world is not the one the data came from),
    or when the truth lacks a column (the world was generated without that outcome or arm).
    """
    filesystem, root = resolve_filesystem(world)
    dataset = pads.dataset(join_path(root, TRUTH_TABLE), filesystem=filesystem, format="parquet")
    absent = [c for c in columns if c not in dataset.schema.names]
    if absent:
        raise UserError(
            f"data.world: the truth of {world!r} has no {absent}; was it generated with that outcome and those arms?"
        )
    truth = dataset.to_table(columns=["application_id", *columns]).to_pandas().set_index("application_id").reindex(ids)
    if truth.isna().any(axis=None):
        raise UserError(
            f"data.world: {world!r} has no truth for some applications; is it the world the features came from?"
        )
    return truth


def world_arms(world: str) -> tuple[str, ...]:
    """The options of the world's experiment by treatment code: none, then its intervention arms."""
    from tala_ray.data.generate import read_manifest  # data.generate imports ray

    return (NO_INTERVENTION, *read_manifest(world).spec.design.arms)


def true_default_probability(world: str, ids: np.ndarray, treatment: np.ndarray) -> np.ndarray:
    """Each application's true PD under the treatment it actually got (the best possible credit score)."""
    arms = world_arms(world) if int(np.max(treatment, initial=0)) > 1 else (NO_INTERVENTION, INTERVENTION)
    truth = read_truth(world, ids, [truth_pd_column(arm) for arm in arms])
    if len(arms) == 2:
        return np.where(treatment == 1, truth["pd_treated"].to_numpy(), truth["pd_control"].to_numpy())
    received = truth.to_numpy(dtype=np.float64)
    return received[np.arange(len(ids)), np.asarray(treatment, dtype=np.int64)]


def true_effects(world: str, ids: np.ndarray, target: str = DEFAULT_TARGET, arm: str = INTERVENTION) -> np.ndarray:
    """Each application's true effect of `arm` against none on the outcome `target`: for the default
    `defaulted`, what the arm lowers its PD by (`true_uplift` for the one intervention); for a continuous
    outcome, the change in its expected value (treated minus control, in its units)."""
    return true_arm_effects(world, ids, target, (arm,))[:, 0]


def true_arm_effects(world: str, ids: np.ndarray, target: str, arms: Sequence[str]) -> np.ndarray:
    """`true_effects` of every arm of `arms`: rows x arms."""
    if target == DEFAULT_TARGET:
        if tuple(arms) == (INTERVENTION,):
            return read_truth(world, ids, ("true_uplift",))["true_uplift"].to_numpy(dtype=np.float64).reshape(-1, 1)
        columns = [truth_pd_column(NO_INTERVENTION), *(truth_pd_column(arm) for arm in arms)]
        pd_by_option = read_truth(world, ids, columns).to_numpy(dtype=np.float64)
        return pd_by_option[:, :1] - pd_by_option[:, 1:]
    columns = [truth_expected_column(target, option) for option in (NO_INTERVENTION, *arms)]
    expected = read_truth(world, ids, columns).to_numpy(dtype=np.float64)
    return expected[:, 1:] - expected[:, :1]
