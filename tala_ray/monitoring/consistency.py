"""Online/offline consistency, measured as Chronon measures it: every logged decision's served features
recomputed offline from the world's raw tables with the batch feature code (`compute_features`) at the
logged application time, then compared per feature.

Per feature: `mismatch_rate` (rows whose two values differ, a null on one side included), `missing`
(served null, offline a value), `extra` (served a value, offline null) and `smape` (symmetric mean
absolute percentage error over the rows where both have a value, 0 when both are 0). Only decisions
logged with their applicant id (decisions by id, whose features came from the online store) are judged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
from pydantic import BaseModel, ConfigDict

from tala_ray.core.errors import UserError
from tala_ray.core.storage import join_path, resolve_filesystem
from tala_ray.data import validation
from tala_ray.features.definitions import FEATURE_NAMES, compute_features
from tala_ray.monitoring.prediction_log import FEATURES_COLUMN, read_prediction_log

RAW_TABLES = ("applicants", "events", "loans")


class FeatureConsistency(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feature: str
    mismatch_rate: float
    missing: int
    extra: int
    smape: float


class ConsistencyReport(BaseModel):
    """Per feature and overall (the share of row x feature values that differ)."""

    model_config = ConfigDict(extra="forbid")

    decisions: int
    mismatch_rate: float
    features: list[FeatureConsistency]

    def worst(self, n: int = 10) -> list[FeatureConsistency]:
        return sorted(self.features, key=lambda f: (-f.mismatch_rate, -f.smape))[:n]


def read_raw_tables(world: str) -> dict[str, pd.DataFrame]:
    """The world's applicants, events and loans, conformed to their contracts."""
    filesystem, root = resolve_filesystem(world)
    tables = {}
    for name in RAW_TABLES:
        location = join_path(root, name)
        if filesystem.get_file_info(location).type.name == "NotFound":
            raise UserError(f"world {world!r}: table {name!r} is missing (expected Parquet files under {location})")
        data = pads.dataset(location, filesystem=filesystem, format="parquet").to_table()
        tables[name] = validation.conform(name, data).to_pandas()
    return tables


def logged_applications(log: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The logged decisions by id as an `applications` table (application_id: the row's position), and
    their log rows."""
    if log.empty or "applicant_id" not in log:
        raise UserError("the prediction log holds no decision by applicant id (nothing to recompute)")
    rows = log[(log["role"] == "decision") & log["applicant_id"].notna()].reset_index(drop=True)
    if rows.empty:
        raise UserError("the prediction log holds no decision by applicant id (nothing to recompute)")
    return pd.DataFrame(
        {
            "application_id": np.arange(len(rows), dtype=np.int64),
            "applicant_id": rows["applicant_id"].astype(np.int64),
            "application_time": pd.to_datetime(rows["application_time"], utc=True).astype("datetime64[ms, UTC]"),
            "amount": rows["requested_amount"].astype(float),
            "term_days": rows["requested_term_days"].astype(np.int32),
        }
    ), rows


def _compare(online: pd.Series, offline: pd.Series) -> FeatureConsistency:
    served, recomputed = online.isna().to_numpy(), offline.isna().to_numpy()
    missing, extra = served & ~recomputed, ~served & recomputed
    both = ~served & ~recomputed
    differ = np.zeros(len(online), dtype=bool)
    if pd.api.types.is_numeric_dtype(offline) and not pd.api.types.is_bool_dtype(offline):
        a = online[both].astype(float).to_numpy()
        b = offline[both].astype(float).to_numpy()
        scale = np.abs(a) + np.abs(b)
        terms = np.where(scale > 0, 2 * np.abs(a - b) / np.where(scale > 0, scale, 1), 0.0)
    else:  # a category: equal or not (SMAPE counts a differing value as 2, as for numbers of opposite sign)
        a, b = online[both].astype(str).to_numpy(), offline[both].astype(str).to_numpy()
        terms = np.where(a == b, 0.0, 2.0)
    differ[np.flatnonzero(both)] = a != b
    return FeatureConsistency(
        feature=str(online.name),
        mismatch_rate=float((differ | missing | extra).mean()) if len(online) else 0.0,
        missing=int(missing.sum()),
        extra=int(extra.sum()),
        smape=float(terms.mean()) if len(terms) else 0.0,
    )


def consistency(log: pd.DataFrame, raw: dict[str, pd.DataFrame]) -> ConsistencyReport:
    """The logged decisions' served features against the offline recomputation at their logged times."""
    applications, rows = logged_applications(log)
    offline = compute_features(applications, raw["applicants"], raw["events"], raw["loans"])
    offline = offline.set_index("application_id").loc[applications["application_id"]].reset_index(drop=True)
    served = pd.DataFrame([dict(f) if f is not None else {} for f in rows[FEATURES_COLUMN]])
    results = []
    for name in FEATURE_NAMES:
        online = served[name] if name in served else pd.Series([None] * len(rows), dtype=object)
        results.append(_compare(online.rename(name), offline[name]))
    overall = float(np.mean([f.mismatch_rate for f in results])) if results else 0.0
    return ConsistencyReport(decisions=len(rows), mismatch_rate=overall, features=results)


def log_consistency(log_uri: str, world: str) -> ConsistencyReport:
    """`consistency` of the prediction log at `log_uri` against the raw tables of `world`."""
    return consistency(read_prediction_log(log_uri), read_raw_tables(world))
