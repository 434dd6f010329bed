"""The feature-table rows of one partition of applicants: read its files, validate, compute."""

from __future__ import annotations

import pyarrow as pa

from tala_ray.data import schema, validation
from tala_ray.features.assemble import feature_rows, validate_batch
from tala_ray.features.layout import Partition, read_file


def partition_tables(partition: Partition, out: str) -> dict[str, pa.Table]:
    """Each raw table's good rows of the partition, file by file in read order (bad rows go to
    `out`'s quarantine)."""
    tables = {}
    for name in validation.RAW_TABLES:
        paths = partition.files.get(name, [])
        batches = [read_file(partition.source, path, partition.format) for path in paths]
        good = [validate_batch(out, name, batch) for batch in batches or [schema.TABLES[name].empty_table()]]
        tables[name] = pa.concat_tables(good, promote_options="default")
    return tables


def partition_features(partition: Partition, out: str) -> pa.Table:
    """Key columns plus features of every application of the partition."""
    return pa.Table.from_pandas(feature_rows(out, partition_tables(partition, out)), preserve_index=False)
