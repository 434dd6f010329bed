"""The prediction log: buffered rows flushed as Parquet files on any pyarrow filesystem.

Columns keep their types: numbers stay numbers, and nested values (lists, dicts) become Parquet
lists, maps or structs (`column_types` pins the type of a column whose values alone would not,
e.g. a list that is often empty). Rows are appended as dicts (`append`) or, cheaper for a
batch, as columns (`append_columns`). A caller hands each batch's feature values over as numpy
columns (`features=`): they become the `features` struct column at flush time, one conversion
for the whole buffer, a missing number (NaN) as null.

Layout under the log root: ``date=YYYY-MM-DD/part-<UTC time>-<writer id>-<sequence>.parquet``.
File names sort by flush time, so the newest rows are read first. Each flush writes one file,
to a hidden temporary name first and renamed into place on local disks (object stores publish
a whole object at once, so there the file is written in place).
"""

from __future__ import annotations

import atexit
import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from tala_ray.core.errors import UserError
from tala_ray.core.storage import join_path, resolve_filesystem

log = logging.getLogger(__name__)

TIME_COLUMN = "logged_at"
FEATURES_COLUMN = "features"


class PredictionLogClosed(RuntimeError):
    """`append` after `close`: the row would never be written."""


@dataclass(frozen=True)
class _Chunk:
    """The columns of one append (each a list with one value a row), when it was appended, and
    its feature columns (if given)."""

    columns: Mapping[str, list[Any]]
    size: int
    appended_at: datetime
    features: Mapping[str, np.ndarray] | None


def _table(chunks: list[_Chunk], column_types: Mapping[str, pa.DataType]) -> pa.Table:
    """The chunks as one table (a column a chunk lacks is null there, a pinned column no chunk has is
    all null, a missing time is the chunk's append time); the chunks' feature columns become the
    `features` struct."""
    names = list(dict.fromkeys([*(name for chunk in chunks for name in chunk.columns), *column_types]))
    columns = {name: pa.array(_column_values(chunks, name), type=column_types.get(name)) for name in names}
    if TIME_COLUMN not in columns:
        columns[TIME_COLUMN] = pa.array(_column_values(chunks, TIME_COLUMN))
    if any(chunk.features is not None for chunk in chunks):
        columns[FEATURES_COLUMN] = _feature_struct(chunks)
    return pa.table(columns)


def _column_values(chunks: list[_Chunk], name: str) -> list[Any]:
    values: list[Any] = []
    for chunk in chunks:
        default = chunk.appended_at if name == TIME_COLUMN else None
        values.extend(chunk.columns.get(name) or [default] * chunk.size)
    return values


def _feature_struct(chunks: list[_Chunk]) -> pa.StructArray:
    """One struct per row with every feature any chunk has (null where its chunk lacks it); rows
    of chunks without features are null. Each feature is converted once for all chunks: numbers
    keep their type, NaN (a missing value) becomes null."""
    names = list(dict.fromkeys(name for chunk in chunks if chunk.features is not None for name in chunk.features))
    children = [
        pa.array(np.concatenate([_chunk_values(chunk, name) for chunk in chunks]), from_pandas=True) for name in names
    ]
    without = np.repeat([chunk.features is None for chunk in chunks], [chunk.size for chunk in chunks])
    return pa.StructArray.from_arrays(children, names=names, mask=pa.array(without) if without.any() else None)


def _chunk_values(chunk: _Chunk, name: str) -> np.ndarray:
    values = None if chunk.features is None else chunk.features.get(name)
    return np.full(chunk.size, None, dtype=object) if values is None else values


class PredictionLogWriter:
    """Thread-safe buffered writer: flushes on a timer, when the buffer is full, and on close.

    A row is acknowledged when `append` returns; `close()` writes every acknowledged row. A failed
    write keeps its rows in the buffer for the next flush, so nothing is dropped on a transient error.
    """

    def __init__(
        self,
        uri: str,
        flush_interval_s: float = 2.0,
        max_buffer_rows: int = 1000,
        column_types: Mapping[str, pa.DataType] | None = None,
    ) -> None:
        if flush_interval_s <= 0:
            raise UserError(f"flush_interval_s: must be positive, got {flush_interval_s}")
        if max_buffer_rows < 1:
            raise UserError(f"max_buffer_rows: must be at least 1, got {max_buffer_rows}")
        self.uri = uri
        self._fs, self._root = resolve_filesystem(uri)
        self._local = isinstance(self._fs, pafs.LocalFileSystem)
        self._writer_id = uuid.uuid4().hex[:12]
        self._max_buffer_rows = max_buffer_rows
        self._column_types = dict(column_types or {})
        self._buffer: list[_Chunk] = []
        self._buffered_rows = 0
        self._buffer_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._sequence = 0
        self._closed = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flusher = threading.Thread(
            target=self._flush_periodically, args=(flush_interval_s,), name="prediction-log-flusher", daemon=True
        )
        self._flusher.start()
        atexit.register(self.close)

    def append(self, records: list[dict[str, Any]], features: Mapping[str, np.ndarray] | None = None) -> None:
        """Buffer rows (dicts of column -> value); see `append_columns`."""
        names = dict.fromkeys(name for record in records for name in record)
        self.append_columns({name: [record.get(name) for record in records] for name in names}, len(records), features)

    def append_columns(
        self, columns: Mapping[str, list[Any]], size: int, features: Mapping[str, np.ndarray] | None = None
    ) -> None:
        """Buffer `size` rows given as columns (lists of `size` values); a full buffer wakes the flusher thread.

        `features`: numpy columns with one value a row, logged as each row's `features` struct
        (the one way to log features: there is no `features` column among `columns`).
        """
        if any(len(values) != size for values in columns.values()):
            raise ValueError(f"columns: every column needs one value per row ({size})")
        if features is not None and any(len(values) != size for values in features.values()):
            raise ValueError(f"features: every column needs one value per row ({size})")
        if FEATURES_COLUMN in columns:
            raise ValueError(f"{FEATURES_COLUMN}: pass feature values as `features` columns, not as a logged column")
        chunk = _Chunk(columns, size, datetime.now(UTC), features or None)
        with self._buffer_lock:
            if self._closed:
                raise PredictionLogClosed(f"prediction log {self.uri} is closed")
            self._buffer.append(chunk)
            self._buffered_rows += size
            full = self._buffered_rows >= self._max_buffer_rows
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Write the buffered rows as one Parquet file; returns how many rows were written."""
        with self._flush_lock:
            with self._buffer_lock:
                chunks, self._buffer = self._buffer, []
                count, self._buffered_rows = self._buffered_rows, 0
            if not count:
                return 0
            try:
                self._write(_table(chunks, self._column_types))
            except Exception:
                with self._buffer_lock:
                    self._buffer[:0] = chunks
                    self._buffered_rows += count
                raise
            return count

    def close(self) -> None:
        """Stop the timer and write what is left. Safe to call more than once."""
        with self._buffer_lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._wake.set()
        if self._flusher is not threading.current_thread():
            self._flusher.join()
        atexit.unregister(self.close)
        self.flush()

    @property
    def buffered_rows(self) -> int:
        with self._buffer_lock:
            return self._buffered_rows

    def _flush_periodically(self, interval_s: float) -> None:
        while not self._stop.is_set():
            self._wake.wait(interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.flush()
            except Exception:
                log.exception("prediction log %s: flush failed; rows kept for the next attempt", self.uri)

    def _write(self, table: pa.Table) -> None:
        """One Parquet file; dictionary-encoded string columns only (the feature numbers rarely
        repeat, and trying a dictionary for each of them was a third of the write's CPU)."""
        options = {"use_dictionary": [field.name for field in table.schema if pa.types.is_string(field.type)]}
        flushed_at = datetime.now(UTC)
        self._sequence += 1
        directory = join_path(self._root, f"date={flushed_at:%Y-%m-%d}")
        name = f"part-{flushed_at:%Y%m%dT%H%M%S%f}-{self._writer_id}-{self._sequence:06d}.parquet"
        final_path = join_path(directory, name)
        self._fs.create_dir(directory, recursive=True)
        if not self._local:
            pq.write_table(table, final_path, filesystem=self._fs, **options)
            return
        temporary_path = join_path(directory, f".{name}.tmp")
        pq.write_table(table, temporary_path, filesystem=self._fs, **options)
        self._fs.move(temporary_path, final_path)


def _log_files(filesystem: pafs.FileSystem, root: str) -> list[str]:
    """Finished log files, oldest first (hidden temporary files are skipped)."""
    selector = pafs.FileSelector(root, recursive=True)
    infos = filesystem.get_file_info(selector)
    paths = [
        info.path
        for info in infos
        if info.type == pafs.FileType.File
        and info.base_name.startswith("part-")
        and info.base_name.endswith(".parquet")
    ]
    return sorted(paths, key=lambda p: p.rsplit("/", 1)[-1])


def _flushed_at(path: str) -> pd.Timestamp:
    """The flush time in a file name: every row in the file was logged at or before it."""
    stamp = path.rsplit("/", 1)[-1].split("-")[1]
    return pd.Timestamp(datetime.strptime(stamp, "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC))


def _as_utc(moment: datetime | str) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _enough(frames: list[pd.DataFrame], limit: int | None, next_flush: pd.Timestamp) -> bool:
    """True when no row of an older file can be among the `limit` newest rows read so far."""
    if limit is None:
        return False
    if limit == 0:
        return True
    times = [t for f in frames for t in f[TIME_COLUMN]]
    return len(times) >= limit and sorted(times, reverse=True)[limit - 1] > next_flush


def read_prediction_log(uri: str, limit: int | None = None, since: datetime | str | None = None) -> pd.DataFrame:
    """Logged rows, newest first; at most `limit`, only those logged at or after `since` (UTC if naive).

    Files are read newest first and reading stops as soon as older files cannot change the answer.
    """
    if limit is not None and limit < 0:
        raise UserError(f"limit: must be zero or more, got {limit}")
    filesystem, root = resolve_filesystem(uri)
    if filesystem.get_file_info(root).type != pafs.FileType.Directory:
        raise UserError(f"uri: no prediction log at {uri}")
    threshold = _as_utc(since) if since is not None else None
    frames: list[pd.DataFrame] = []
    for path in reversed(_log_files(filesystem, root)):
        flushed_at = _flushed_at(path)
        if (threshold is not None and flushed_at < threshold) or _enough(frames, limit, flushed_at):
            break
        frame = pq.read_table(path, filesystem=filesystem).to_pandas(maps_as_pydicts="strict")
        frame[TIME_COLUMN] = pd.to_datetime(frame[TIME_COLUMN], utc=True)
        if threshold is not None:
            frame = frame[frame[TIME_COLUMN] >= threshold]
        if not frame.empty:
            frames.append(frame.iloc[::-1])
    if not frames:
        return pd.DataFrame()
    newest_first = pd.concat(frames, ignore_index=True)
    newest_first = newest_first.sort_values(TIME_COLUMN, ascending=False, kind="stable", ignore_index=True)
    return newest_first if limit is None else newest_first.head(limit)
