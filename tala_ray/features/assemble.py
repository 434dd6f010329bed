"""Steps shared by the Ray Data pipeline and the single-process build: validated input tables of a
group of applicants in, feature-table rows out; bad rows to the quarantine."""

from __future__ import annotations

import hashlib

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tala_ray.core.storage import join_path, resolve_filesystem
from tala_ray.data import validation
from tala_ray.features.definitions import compute_features
from tala_ray.features.table import KEY_COLUMNS, OUTCOME_COLUMNS, QUARANTINE_DIR


def validate_batch(out: str, table: str, batch: pa.Table) -> pa.Table:
    """The good rows of a raw batch; the bad ones are written to the quarantine."""
    good, bad = validation.split_valid(table, validation.conform(table, batch))
    write_quarantine(out, table, bad)
    return good


def write_quarantine(out: str, table: str, bad: pa.Table) -> None:
    """Write bad rows to `quarantine/<table>/`; the file name is a hash of the rows, so a retried task
    rewrites the same file instead of adding a duplicate."""
    if bad.num_rows == 0:
        return
    sink = pa.BufferOutputStream()
    pq.write_table(bad, sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    filesystem, root = resolve_filesystem(out)
    directory = join_path(root, QUARANTINE_DIR, table)
    filesystem.create_dir(directory, recursive=True)
    with filesystem.open_output_stream(
        join_path(directory, hashlib.sha256(data).hexdigest()[:32] + ".parquet")
    ) as stream:
        stream.write(data)


def feature_rows(out: str, tables: dict[str, pa.Table]) -> pd.DataFrame:
    """Key columns plus features for every application of `tables` (validated rows of some applicants).

    Applications whose applicant is unknown, or before their applicant's sign-up, are quarantined
    (`validation.split_joined`).
    """
    good, bad = validation.split_joined(tables["applications"], tables["applicants"])
    write_quarantine(out, "applications", bad)
    frames = {name: tables[name].to_pandas() for name in ("applicants", "events", "loans")}
    applications, applicants = good.to_pandas(), frames["applicants"].drop_duplicates("applicant_id")
    features = compute_features(applications, applicants, frames["events"], frames["loans"])
    keys = applications[[*KEY_COLUMNS, *(c for c in OUTCOME_COLUMNS if c in applications)]].reset_index(drop=True)
    return pd.concat([keys, features.drop(columns="application_id")], axis=1)
