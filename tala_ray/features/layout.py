"""How a world's raw tables lie in storage, and the units of work the feature pipeline reads.

A raw source is *partitioned by applicant* when every file of every raw table lies under an
`applicant_part=<k>` directory (hive style, as `tala-ray data generate --partitioned` writes): the
directory names declare that all rows of an applicant are in partition k of every table, so the
features of partition k need only its files (`Partition`). Any other layout is read in
`SourceUnit`s (consecutive row groups of a table's files: small files together, large ones in
ranges) and shuffled by applicant first (`features.shuffle`). Either way a unit's files are listed
in the order the single-process engine reads them, so every applicant's rows keep their order and
the features come out bit-identical.
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

MAX_UNIT_ROWS = 2_000_000  # rows a shuffle task reads at most (bounds its memory; a larger row group alone)
FileFormat = Literal["parquet", "arrow"]


class Partition(BaseModel):
    """All rows of some applicants: each raw table's files of one partition, in read order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: int
    source: str  # the location (path or URI) whose filesystem holds the files
    format: FileFormat
    files: dict[str, list[str]]  # raw table -> paths on that filesystem (a table may have none)


class FileSlice(BaseModel):
    """Some consecutive row groups of one Parquet file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    row_groups: list[int]


class SourceUnit(BaseModel):
    """Rows of one raw table that one shuffle task reads: consecutive row groups of its files, in read order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int  # position in the source's read order (every table's units in turn)
    table: str
    slices: list[FileSlice]


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
    """Every raw table's rows as shuffle units of at most `MAX_UNIT_ROWS` rows (a larger row group
    alone): small files are read together, large ones in ranges of row groups."""
    units: list[SourceUnit] = []
    for table in validation.RAW_TABLES:
        groups = [
            (fragment.path, group, fragment.metadata.row_group(group).num_rows)
            for fragment in _fragments(world, table)
            for group in range(fragment.metadata.num_row_groups)
        ]
        for packed in _packed(groups):
            slices = [
                FileSlice(path=path, row_groups=[g for p, g, _ in packed if p == path]) for path in _paths(packed)
            ]
            units.append(SourceUnit(index=len(units), table=table, slices=slices))
    return units


def _packed(groups: list[tuple[str, int, int]]) -> list[list[tuple[str, int, int]]]:
    """Consecutive (path, row group, rows) in runs of at most `MAX_UNIT_ROWS` rows (a larger group alone)."""
    runs: list[list[tuple[str, int, int]]] = []
    rows = 0
    for group in groups:
        if not runs or (runs[-1] and rows + group[2] > MAX_UNIT_ROWS):
            runs.append([])
            rows = 0
        runs[-1].append(group)
        rows += group[2]
    return runs


def _paths(groups: list[tuple[str, int, int]]) -> list[str]:
    return list(dict.fromkeys(path for path, _, _ in groups))


def read_unit(world: str, unit: SourceUnit) -> pa.Table:
    """The raw rows of a shuffle unit, in read order."""
    filesystem, _ = resolve_filesystem(world)
    tables = []
    for piece in unit.slices:
        with filesystem.open_input_file(piece.path) as stream:
            tables.append(pq.ParquetFile(stream).read_row_groups(piece.row_groups))
    return pa.concat_tables(tables, promote_options="permissive")


def read_file(source: str, path: str, file_format: FileFormat) -> pa.Table:
    """One file of a partition: raw Parquet, or an Arrow IPC file the shuffle staged."""
    filesystem, _ = resolve_filesystem(source)
    if file_format == "parquet":
        return pq.read_table(path, filesystem=filesystem, partitioning=None)
    with filesystem.open_input_file(path) as stream:
        return pa.ipc.open_file(stream).read_all()
