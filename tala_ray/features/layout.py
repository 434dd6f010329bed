"""How a world's raw tables lie in storage, and the units of work the feature pipeline reads.

A raw source is *partitioned by applicant* when every file of every raw table lies under an
`applicant_part=<k>` directory (hive style, as `tala-ray data generate --partitioned` writes): the
directory names declare that all rows of an applicant are in partition k of every table, so the
features of partition k need only its files (`Partition`). Any other layout is read in
`SourceUnit`s (a file, or a range of a large file's row groups) and shuffled by applicant first
(`features.shuffle`). Either way a unit's files are listed in the order the single-process engine
reads them, so every applicant's rows keep their order and the features come out bit-identical.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from tala_ray.core.storage import join_path, resolve_filesystem
from tala_ray.data import validation
from tala_ray.data.generate import PARTITION_KEY

MAX_UNIT_ROWS = 2_000_000  # a larger file is read in ranges of row groups (bounds a shuffle task's memory)
FileFormat = Literal["parquet", "arrow"]


class Partition(BaseModel):
    """All rows of some applicants: each raw table's files of one partition, in read order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: int
    source: str  # the location (path or URI) whose filesystem holds the files
    format: FileFormat
    files: dict[str, list[str]]  # raw table -> paths on that filesystem (a table may have none)


class SourceUnit(BaseModel):
    """Rows of one raw table that one shuffle task reads: a file, or some of its row groups."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int  # position in the source's read order (every table's files in turn)
    table: str
    path: str
    row_groups: list[int] | None = None  # None: the whole file


def _fragments(world: str, table: str) -> list[pads.ParquetFileFragment]:
    """The table's Parquet files in read order (the order `pads.dataset` lists them)."""
    filesystem, root = resolve_filesystem(world)
    partitioning = pads.partitioning(pa.schema([(PARTITION_KEY, pa.int64())]), flavor="hive")
    dataset = pads.dataset(join_path(root, table), filesystem=filesystem, format="parquet", partitioning=partitioning)
    return list(dataset.get_fragments())


def _partition_key(fragment: pads.ParquetFileFragment) -> int | None:
    return pads.get_partition_keys(fragment.partition_expression).get(PARTITION_KEY)


def declared_partitions(world: str) -> list[Partition] | None:
    """The world's partitions by applicant, or None when its files do not all declare one."""
    files: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for table in validation.RAW_TABLES:
        for fragment in _fragments(world, table):
            key = _partition_key(fragment)
            if key is None:
                return None
            files[key][table].append(fragment.path)
    return [Partition(key=key, source=world, format="parquet", files=dict(files[key])) for key in sorted(files)]


def source_units(world: str) -> list[SourceUnit]:
    """Every raw table's rows as shuffle units: whole files, large ones split by row groups."""
    units: list[SourceUnit] = []
    for table in validation.RAW_TABLES:
        for fragment in _fragments(world, table):
            groups = [fragment.metadata.row_group(i).num_rows for i in range(fragment.metadata.num_row_groups)]
            for row_groups in _ranges(groups) if sum(groups) > MAX_UNIT_ROWS else [None]:
                units.append(SourceUnit(index=len(units), table=table, path=fragment.path, row_groups=row_groups))
    return units


def _ranges(group_rows: list[int]) -> list[list[int]]:
    """Consecutive row groups in ranges of at most `MAX_UNIT_ROWS` rows (a larger group alone)."""
    ranges: list[list[int]] = [[]]
    rows = 0
    for group, count in enumerate(group_rows):
        if ranges[-1] and rows + count > MAX_UNIT_ROWS:
            ranges.append([])
            rows = 0
        ranges[-1].append(group)
        rows += count
    return ranges


def read_unit(world: str, unit: SourceUnit) -> pa.Table:
    """The raw rows of a shuffle unit."""
    filesystem, _ = resolve_filesystem(world)
    with filesystem.open_input_file(unit.path) as stream:
        file = pq.ParquetFile(stream)
        return file.read() if unit.row_groups is None else file.read_row_groups(unit.row_groups)


def read_file(source: str, path: str, file_format: FileFormat) -> pa.Table:
    """One file of a partition: raw Parquet, or an Arrow IPC file the shuffle staged."""
    filesystem, _ = resolve_filesystem(source)
    if file_format == "parquet":
        return pq.read_table(path, filesystem=filesystem, partitioning=None)
    with filesystem.open_input_file(path) as stream:
        return pa.ipc.open_file(stream).read_all()
