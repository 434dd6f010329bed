"""The Ray Data batch pipeline: raw Parquet tables (local path or URI) -> feature table.

The work is cut by applicant, so that a task holds every table's rows of its applicants and
nothing else (docs/ray-data-features.md has the measurements behind this shape):

- a world partitioned by applicant (`features.layout.declared_partitions`) is read partition by
  partition: one Ray Data row per partition, `map_batches` reads its files, validates them (bad
  rows to the quarantine) and computes the features with the shared code, `write_parquet` streams
  the rows out. No shuffle, and memory is that of one partition per task whatever the size;
- any other layout is first shuffled by applicant through storage (`features.shuffle`): one Ray
  Data row per source unit, `map_batches` writes its rows bucket by bucket; the buckets are then
  computed exactly like partitions, and the staged files removed.

Ray Data's own shuffles (`groupby(...).map_groups`) hold the whole input in the object store at
their barrier, so their memory grows with the book; they are not used.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

from tala_ray.core.storage import join_path, resolve_filesystem
from tala_ray.features.layout import Partition, SourceUnit, declared_partitions, source_units
from tala_ray.features.partition import partition_features
from tala_ray.features.shuffle import remove_staging, stage_unit, staged_partitions
from tala_ray.features.table import PARTITION_COLUMN, TABLE_DIR

if TYPE_CHECKING:
    from ray.data import Dataset

log = logging.getLogger(__name__)

Layout = Literal["partitioned", "shuffled"]
ITEM = "item"  # the one column of the pipeline's input rows: a unit of work as JSON


def _stage_batch(batch: pa.Table, *, world: str, out: str, num_buckets: int) -> pa.Table:
    """Ray Data UDF: shuffle the source units of the batch; one row per staged file."""
    written = []
    for item in batch.column(ITEM).to_pylist():
        written += stage_unit(world, SourceUnit.model_validate_json(item), out, num_buckets)
    return pa.Table.from_pylist(written)


def _feature_batch(batch: pa.Table, *, out: str) -> pa.Table:
    """Ray Data UDF: the feature-table rows of the partitions of the batch (one, as the pipeline runs it)."""
    parts = [partition_features(Partition.model_validate_json(item), out) for item in batch.column(ITEM).to_pylist()]
    return pa.concat_tables(parts, promote_options="default")


def _items(units: list[Partition] | list[SourceUnit]) -> Dataset:
    """One Ray Data row, in its own block, per unit of work: one task each."""
    import ray

    return ray.data.from_items([{ITEM: unit.model_dump_json()} for unit in units], override_num_blocks=len(units))


def _shuffle(world: str, out: str, num_buckets: int) -> list[Partition]:
    units = source_units(world)
    staging = _items(units).map_batches(
        _stage_batch,
        batch_size=1,
        batch_format="pyarrow",
        fn_kwargs={"world": world, "out": out, "num_buckets": num_buckets},
    )
    staged = staging.take_all()
    log.debug("shuffle of %d source units into %d buckets:\n%s", len(units), num_buckets, staging.stats())
    return staged_partitions(out, staged)


def run_pipeline(world: str, out: str, num_buckets: int) -> tuple[Layout, int]:
    """Build the feature table of `world` into `out`/table with Ray Data (on the current cluster);
    return how the raw tables were met (partitioned, or shuffled into `num_buckets`) and the
    number of partitions computed."""
    partitions = declared_partitions(world)
    layout: Layout = "partitioned" if partitions is not None else "shuffled"
    if partitions is None:
        partitions = _shuffle(world, out, num_buckets)
    features = _items(partitions).map_batches(
        _feature_batch, batch_size=1, batch_format="pyarrow", fn_kwargs={"out": out}
    )
    out_fs, out_root = resolve_filesystem(out)
    features.write_parquet(join_path(out_root, TABLE_DIR), filesystem=out_fs, partition_cols=[PARTITION_COLUMN])
    log.debug("features of %d partitions (%s):\n%s", len(partitions), layout, features.stats())
    if layout == "shuffled":
        remove_staging(out)
    return layout, len(partitions)
