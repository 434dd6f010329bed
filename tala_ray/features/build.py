"""`tala-ray features build`: check the inputs, run an engine (Ray Data, or one process for
comparison), write the manifest."""

from __future__ import annotations

import logging
import math
import time
from typing import Literal

import pyarrow as pa
import pyarrow.dataset as pads
from pyarrow import fs as pafs

from tala_ray.core.errors import UserError
from tala_ray.core.storage import join_path, resolve_filesystem
from tala_ray.data import validation
from tala_ray.data.generate import MANIFEST as WORLD_MANIFEST
from tala_ray.data.generate import check_output, read_manifest
from tala_ray.features.assemble import feature_rows, validate_batch
from tala_ray.features.definitions import FEATURES, feature_set_version
from tala_ray.features.table import (
    PARTITION_COLUMN,
    TABLE_DIR,
    FeatureManifest,
    count_quarantine,
    count_rows,
    write_feature_manifest,
)

log = logging.getLogger(__name__)

Engine = Literal["ray", "local"]
APPLICANTS_PER_BUCKET = 25_000


def _raw_dataset(world: str, table: str) -> pads.Dataset:
    filesystem, root = resolve_filesystem(world)
    location = join_path(root, table)
    if filesystem.get_file_info(location).type == pafs.FileType.NotFound:
        raise UserError(f"world {world!r}: table {table!r} is missing (expected Parquet files under {location})")
    dataset = pads.dataset(location, filesystem=filesystem, format="parquet")
    if not dataset.files:
        raise UserError(f"world {world!r}: table {table!r} has no Parquet files under {location}")
    return dataset


def check_inputs(world: str) -> dict[str, int]:
    """Check every raw table's columns and types (metadata only); return their row counts."""
    rows = {}
    for table in validation.RAW_TABLES:
        dataset = _raw_dataset(world, table)
        validation.check_schema(table, dataset.schema)
        rows[table] = dataset.count_rows()
    return rows


def _world_hash(world: str) -> str | None:
    filesystem, root = resolve_filesystem(world)
    if filesystem.get_file_info(join_path(root, WORLD_MANIFEST)).type != pafs.FileType.File:
        return None
    return read_manifest(world).content_hash


def _prepare_output(out: str, overwrite: bool) -> None:
    check_output(out, overwrite)
    filesystem, root = resolve_filesystem(out)
    if filesystem.get_file_info(root).type == pafs.FileType.Directory:
        filesystem.delete_dir_contents(root)
    filesystem.create_dir(root, recursive=True)


def run_local(world: str, out: str) -> None:
    """The same validation and feature code in this process, over whole tables (the benchmark's baseline)."""
    tables = {name: validate_batch(out, name, _raw_dataset(world, name).to_table()) for name in validation.RAW_TABLES}
    rows = pa.Table.from_pandas(feature_rows(out, tables), preserve_index=False)
    filesystem, root = resolve_filesystem(out)
    pads.write_dataset(
        rows,
        join_path(root, TABLE_DIR),
        filesystem=filesystem,
        format="parquet",
        partitioning=[PARTITION_COLUMN],
        partitioning_flavor="hive",
        existing_data_behavior="overwrite_or_ignore",
    )


def default_buckets(applications: int) -> int:
    """Shuffle buckets (raw tables not partitioned by applicant) of about `APPLICANTS_PER_BUCKET`
    applicants each, at least 2 so both cores work."""
    return max(2, math.ceil(applications / APPLICANTS_PER_BUCKET))


def build_feature_table(
    world: str, out: str, *, engine: Engine = "ray", overwrite: bool = False, num_buckets: int | None = None
) -> FeatureManifest:
    """Build the feature table of `world` (path or URI) into `out`; return its manifest."""
    rows_in = check_inputs(world)
    _prepare_output(out, overwrite)
    started = time.perf_counter()
    layout, partitions = None, None
    if engine == "ray":
        from tala_ray.features.ray_pipeline import run_pipeline

        layout, partitions = run_pipeline(world, out, num_buckets or default_buckets(rows_in["applications"]))
    else:
        run_local(world, out)
    manifest = FeatureManifest(
        layout=layout,
        partitions=partitions,
        feature_set_version=feature_set_version(),
        features=FEATURES,
        world_content_hash=_world_hash(world),
        source=world,
        engine=engine,
        rows_in=rows_in,
        rows_out=count_rows(out),
        quarantined=count_quarantine(out),
        elapsed_seconds=round(time.perf_counter() - started, 3),
    )
    write_feature_manifest(out, manifest)
    log.info("feature table written to %s: %d rows, %d quarantined", out, manifest.rows_out, manifest.quarantined_total)
    return manifest
