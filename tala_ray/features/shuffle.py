"""The shuffle by applicant for raw tables that are not partitioned, through storage.

Each task reads one `SourceUnit`, splits its rows into buckets (`applicant_id` modulo the bucket
count; a row without an id goes to bucket 0, where validation quarantines it) and writes each
bucket's rows, in their order, as one LZ4-compressed Arrow IPC file under
`<out>/_shuffle/<table>/applicant_part=<bucket>/<unit>.arrow`. A bucket's files, taken in unit
order, then form a `Partition` like a partitioned world's, computed by the same code. Memory stays
that of one unit or one bucket per task, whatever the size of the input: nothing waits in the
object store for a barrier (measured against Ray Data's own shuffles in docs/ray-data-features.md).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import fs as pafs

from tala_ray.core.storage import join_path, resolve_filesystem
from tala_ray.data.generate import PARTITION_KEY
from tala_ray.features.layout import Partition, SourceUnit, read_unit

STAGING_DIR = "_shuffle"
COMPRESSION = "lz4"  # measured: about half the bytes of plain IPC for ~0.3 s of CPU per 7.6M events


def bucket_of(applicant_ids: pa.ChunkedArray | pa.Array, num_buckets: int) -> np.ndarray:
    """The bucket of each row: `applicant_id` modulo `num_buckets` (bucket 0 when the id is missing)."""
    ids = pc.fill_null(applicant_ids.cast(pa.int64()), 0).to_numpy()
    dtype = np.int16 if num_buckets <= np.iinfo(np.int16).max else np.int64  # int16: a radix sort below
    return (ids % num_buckets).astype(dtype)


def stage_unit(world: str, unit: SourceUnit, out: str, num_buckets: int) -> list[dict[str, Any]]:
    """Write the unit's rows bucket by bucket; return one row (table, bucket, unit, path) per file."""
    rows = read_unit(world, unit)
    buckets = bucket_of(rows.column("applicant_id"), num_buckets)
    order = np.argsort(buckets, kind="stable")  # stable: each bucket keeps the rows' order
    ordered, sorted_buckets = rows.take(pa.array(order)), buckets[order]
    present, starts = np.unique(sorted_buckets, return_index=True)
    ends = np.append(starts[1:], len(sorted_buckets))
    filesystem, root = resolve_filesystem(out)
    written = []
    for bucket, start, end in zip(present.tolist(), starts.tolist(), ends.tolist(), strict=True):
        directory = join_path(root, STAGING_DIR, unit.table, f"{PARTITION_KEY}={bucket:05d}")
        path = join_path(directory, f"{unit.index:06d}.arrow")
        filesystem.create_dir(directory, recursive=True)
        options = pa.ipc.IpcWriteOptions(compression=COMPRESSION)
        with filesystem.open_output_stream(path) as stream, pa.ipc.new_file(stream, rows.schema, options=options) as w:
            w.write_table(ordered.slice(start, end - start))
        written.append({"table": unit.table, "bucket": bucket, "unit": unit.index, "path": path})
    return written


def staged_partitions(out: str, staged: list[dict[str, Any]]) -> list[Partition]:
    """The buckets as partitions: each table's staged files of a bucket, in unit order."""
    files: dict[int, dict[str, list[tuple[int, str]]]] = defaultdict(lambda: defaultdict(list))
    for row in staged:
        files[row["bucket"]][row["table"]].append((row["unit"], row["path"]))
    return [
        Partition(
            key=bucket,
            source=out,
            format="arrow",
            files={table: [path for _, path in sorted(paths)] for table, paths in files[bucket].items()},
        )
        for bucket in sorted(files)
    ]


def remove_staging(out: str) -> None:
    """Delete the staged files (after the feature table is written)."""
    filesystem, root = resolve_filesystem(out)
    if filesystem.get_file_info(join_path(root, STAGING_DIR)).type == pafs.FileType.Directory:
        filesystem.delete_dir(join_path(root, STAGING_DIR))
