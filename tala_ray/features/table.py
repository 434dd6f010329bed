"""The feature table on disk: a Parquet dataset (hive-partitioned by cohort) plus `manifest.json`.

Layout under the output location: `table/cohort=<c>/*.parquet`, `quarantine/<raw table>/*.parquet`
(bad input rows with a `reason` column) and `manifest.json`.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
from pyarrow import fs as pafs
from pydantic import BaseModel, ConfigDict

from tala_ray.core.storage import join_path, read_model, resolve_filesystem, write_model
from tala_ray.data.schema import APPLICATION_OUTCOMES
from tala_ray.features.definitions import FeatureDefinition

MANIFEST = "manifest.json"
TABLE_DIR = "table"
QUARANTINE_DIR = "quarantine"
PARTITION_COLUMN = "cohort"
KEY_COLUMNS = (
    "application_id",
    "applicant_id",
    "application_time",
    "cohort",
    "treatment",
    "propensity",
    "defaulted",
    "amount",  # requested, local currency: what the policy lends against (`tala-ray score`)
)
OUTCOME_COLUMNS = tuple(APPLICATION_OUTCOMES.names)  # carried after the keys when the world has them


class FeatureManifest(BaseModel):
    """What a feature table holds and where it came from."""

    model_config = ConfigDict(extra="forbid")

    feature_set_version: str
    features: list[FeatureDefinition]
    world_content_hash: str | None
    source: str
    engine: str
    layout: str | None = None  # Ray engine: "partitioned" (raw tables declared it) or "shuffled" by applicant
    partitions: int | None = None  # Ray engine: partitions (or shuffle buckets) computed
    rows_in: dict[str, int]
    rows_out: int
    quarantined: dict[str, dict[str, int]]
    elapsed_seconds: float

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def quarantined_total(self) -> int:
        return sum(sum(reasons.values()) for reasons in self.quarantined.values())


def write_feature_manifest(out: str, manifest: FeatureManifest) -> None:
    write_model(out, MANIFEST, manifest)


def read_feature_manifest(path: str) -> FeatureManifest:
    """The manifest of a feature table built by `tala-ray features build`."""
    missing = f"no feature table at {path!r}: {MANIFEST} is missing (run `tala-ray features build`)"
    return read_model(path, MANIFEST, FeatureManifest, missing)


def _dataset(path: str, directory: str) -> pads.Dataset:
    filesystem, root = resolve_filesystem(path)
    return pads.dataset(join_path(root, directory), filesystem=filesystem, format="parquet", partitioning="hive")


def read_feature_table(path: str) -> pd.DataFrame:
    """The whole feature table as pandas, sorted by application_id: key columns, then the features."""
    manifest = read_feature_manifest(path)
    table = _dataset(path, TABLE_DIR).to_table()
    cohort = table.column(PARTITION_COLUMN).cast(pa.string())
    table = table.set_column(table.schema.get_field_index(PARTITION_COLUMN), PARTITION_COLUMN, cohort)
    keys = [name for name in KEY_COLUMNS if name in table.column_names]  # tables built before `amount` lack it
    outcomes = [name for name in OUTCOME_COLUMNS if name in table.column_names]
    frame = table.select([*keys, *outcomes, *manifest.feature_names]).to_pandas()
    return frame.sort_values("application_id", kind="stable").reset_index(drop=True)


def read_quarantine(path: str, table: str) -> pd.DataFrame:
    """The quarantined rows of one raw table (empty when none were quarantined)."""
    filesystem, root = resolve_filesystem(path)
    location = join_path(root, QUARANTINE_DIR, table)
    if filesystem.get_file_info(location).type != pafs.FileType.Directory:
        return pd.DataFrame()
    return pads.dataset(location, filesystem=filesystem, format="parquet").to_table().to_pandas()


def count_quarantine(path: str) -> dict[str, dict[str, int]]:
    """table -> reason -> rows, read from the quarantine files' `reason` column only."""
    filesystem, root = resolve_filesystem(path)
    location = join_path(root, QUARANTINE_DIR)
    if filesystem.get_file_info(location).type != pafs.FileType.Directory:
        return {}
    counts: dict[str, dict[str, int]] = {}
    for entry in filesystem.get_file_info(pafs.FileSelector(location, recursive=False)):
        if entry.type != pafs.FileType.Directory:
            continue
        reasons = pads.dataset(entry.path, filesystem=filesystem, format="parquet").to_table(columns=["reason"])
        values = reasons.column("reason").value_counts().to_pylist()
        counts[entry.base_name] = {v["values"]: v["counts"] for v in values}
    return counts


def count_rows(path: str) -> int:
    """Rows of the feature table, from Parquet metadata."""
    return _dataset(path, TABLE_DIR).count_rows()
