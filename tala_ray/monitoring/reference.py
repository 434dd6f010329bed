"""The training reference the monitor compares live traffic with: features, scores and labels.

A reference is a Parquet file (or directory) with every feature of `FEATURE_NAMES`, the scores of
the models being monitored (`default_probability`, `uplift`) and, when known, the label
(`defaulted`) and the intervention given (`treatment`). `score_reference` builds one from a feature
table (the training period) and the registered models, so drift and performance compare like with like.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from tala_ray.core.errors import UserError
from tala_ray.core.storage import resolve_filesystem
from tala_ray.features.definitions import FEATURE_NAMES
from tala_ray.models.predictors import CreditPredictor, UpliftPredictor
from tala_ray.monitoring.decisions import SCORES

LABELS = ("defaulted", "treatment")


@dataclass(frozen=True)
class Reference:
    """The reference rows: `features` (FEATURE_NAMES), `scores` (SCORES), labels when known."""

    features: pd.DataFrame
    scores: pd.DataFrame
    defaulted: np.ndarray | None
    treated: np.ndarray | None

    def __len__(self) -> int:
        return len(self.features)

    @property
    def pd_served(self) -> np.ndarray:
        """Each row's predicted PD under the option it got (the label's), for calibration."""
        treated = self.treated if self.treated is not None else np.zeros(len(self), dtype=bool)
        pd_control, uplift = self.scores["default_probability"].to_numpy(), self.scores["uplift"].to_numpy()
        return np.clip(pd_control - uplift * treated, 0.0, 1.0)


def reference_from_frame(frame: pd.DataFrame, source: str = "reference") -> Reference:
    """A reference from a frame with the features, the scores and optionally the labels."""
    missing = [name for name in (*FEATURE_NAMES, *SCORES) if name not in frame.columns]
    if missing:
        raise UserError(f"{source}: missing column(s) {missing[:6]}{' ...' if len(missing) > 6 else ''}")
    if len(frame) < 100:
        raise UserError(f"{source}: {len(frame)} rows; a reference needs at least 100")
    frame = frame.reset_index(drop=True)
    return Reference(
        features=frame[FEATURE_NAMES],
        scores=frame[list(SCORES)].astype(float),
        defaulted=frame["defaulted"].to_numpy(dtype=np.int64) if "defaulted" in frame else None,
        treated=frame["treatment"].to_numpy(dtype=bool) if "treatment" in frame else None,
    )


def read_reference(uri: str) -> Reference:
    """The reference stored at `uri` (a Parquet file or a directory of them)."""
    filesystem, path = resolve_filesystem(uri)
    if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
        raise UserError(f"reference: nothing at {uri!r} (build one with `tala-ray monitor reference`)")
    try:
        frame = pads.dataset(path, filesystem=filesystem, format="parquet").to_table().to_pandas()
    except (pa.ArrowInvalid, OSError) as error:
        raise UserError(f"reference: {uri!r} is not a readable Parquet table ({error})") from None
    return reference_from_frame(frame, f"reference {uri!r}")


def score_reference(
    features: pd.DataFrame, credit: CreditPredictor, uplift: UpliftPredictor, rows: int, seed: int = 0
) -> pd.DataFrame:
    """At most `rows` rows of a feature table (a random sample), scored by the models monitored."""
    if len(features) > rows:
        features = features.sample(rows, random_state=seed).sort_index()
    scored = features[[c for c in (*FEATURE_NAMES, *LABELS) if c in features.columns]].reset_index(drop=True)
    scored["default_probability"] = credit.predict_proba(scored[FEATURE_NAMES])
    scored["uplift"] = uplift.effect(scored[FEATURE_NAMES])
    return scored


def write_reference(frame: pd.DataFrame, uri: str) -> None:
    """Write a reference frame as one Parquet file at `uri`."""
    reference_from_frame(frame)  # refuse what could not be read back
    filesystem, path = resolve_filesystem(uri)
    parent = path.rsplit("/", 1)[0]
    filesystem.create_dir(parent, recursive=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, filesystem=filesystem)
