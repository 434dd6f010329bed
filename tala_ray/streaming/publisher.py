"""The producer: a world's raw records (applicants at sign-up, events, loans at disbursal) appended to the
topic in event-time order, as the apps and partners would upload them, with batched appends (one
round trip and one server step per chunk of up to 1,000 records, like a Kafka producer's batch).

Pacing: `rate` caps records per second, `speedup` replays event time that many times faster than real
time (both may be set; the slower wins). Delivery is at least once: a chunk whose reply was lost to a
broker failure is sent again once the broker is back (`appendfsync always` makes every acknowledged
entry durable), and the duplicates change nothing in the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import redis
from pydantic import BaseModel, ConfigDict, Field
from redis.commands.core import Script

from tala_ray.core.errors import UserError
from tala_ray.core.storage import join_path, resolve_filesystem
from tala_ray.data import validation
from tala_ray.streaming.codec import KIND_TABLE, TIME_COLUMN, encode_records
from tala_ray.streaming.partitioner import applicant_partitions
from tala_ray.streaming.store import pack
from tala_ray.streaming.topic import StreamConfig, ensure_topic

log = logging.getLogger(__name__)

CHUNK = 1_000  # records per pipelined round trip
RETRY_S = 60.0


class PublishSpec(BaseModel):
    """How to replay: pacing and which records."""

    model_config = ConfigDict(extra="forbid")

    rate: float | None = Field(None, gt=0, description="Records per second at most; default: as fast as possible.")
    speedup: float | None = Field(None, gt=0, description="Event time replayed this many times faster than real.")
    since_ms: int | None = Field(None, description="Only records at or after this event time (epoch ms).")
    until_ms: int | None = Field(None, description="Only records before this event time (epoch ms).")


class PublishReport(BaseModel):
    """What was appended."""

    records: dict[str, int]
    elapsed_s: float
    records_per_s: float
    retries: int


@dataclass
class Records:
    """Raw tables of a world and the event-time order of their rows across kinds."""

    tables: dict[str, pa.Table]
    kinds: np.ndarray  # kind of each record, in publishing order
    rows: np.ndarray  # row of each record in its kind's table
    times: np.ndarray  # event time (ms) of each record


def read_world_tables(world: str) -> dict[str, pa.Table]:
    """The world's applicants, events and loans, checked against their contracts, per kind."""
    filesystem, root = resolve_filesystem(world)
    tables = {}
    for kind, table in KIND_TABLE.items():
        location = join_path(root, table)
        if filesystem.get_file_info(location).type.name == "NotFound":
            raise UserError(f"world {world!r}: table {table!r} is missing (expected Parquet files under {location})")
        data = pads.dataset(location, filesystem=filesystem, format="parquet").to_table()
        validation.check_schema(table, data.schema)
        tables[kind] = validation.conform(table, data)
    return tables


def ordered_records(tables: dict[str, pa.Table], since_ms: int | None = None, until_ms: int | None = None) -> Records:
    """Every row of the tables in event-time order (ties: applicants, then loans, then events, each in
    table order), optionally only those with since_ms <= time < until_ms."""
    kinds, rows, times = [], [], []
    for code, kind in enumerate(("applicant", "loan", "event")):
        at = tables[kind].column(TIME_COLUMN[kind]).cast(pa.int64()).to_numpy(zero_copy_only=False)
        at = np.asarray(at, dtype=np.float64)  # a null time (a bad row: it is published and quarantined) is NaN
        keep = np.ones(len(at), dtype=bool)
        if since_ms is not None:
            keep &= ~(at < since_ms)
        if until_ms is not None:
            keep &= ~(at >= until_ms)
        kinds.append(np.full(int(keep.sum()), code, dtype=np.int8))
        rows.append(np.flatnonzero(keep))
        times.append(np.nan_to_num(at[keep], nan=-np.inf))
    kind_codes, row_numbers, record_times = np.concatenate(kinds), np.concatenate(rows), np.concatenate(times)
    order = np.lexsort((row_numbers, kind_codes, record_times))
    names = np.array(["applicant", "loan", "event"])
    return Records(tables, names[kind_codes[order]], row_numbers[order], record_times[order])


# ARGV: a msgpack array of (partition key, wire record) pairs, appended in order in one step (a script
# runs whole or not at all, so a chunk retried after a broker crash was either fully there or not at all).
_APPEND = """
local entries = cmsgpack.unpack(ARGV[1])
for i = 1, #entries, 2 do redis.call('XADD', entries[i], '*', 'v', entries[i + 1]) end
return #entries / 2
"""


def _chunk_entries(records: Records, start: int, stop: int, partitions: int) -> list[tuple[int, bytes]]:
    """(partition, wire record) of the records start..stop, in order."""
    kinds, rows = records.kinds[start:stop], records.rows[start:stop]
    payloads: list[bytes] = [b""] * len(kinds)
    applicants = np.zeros(len(kinds), dtype=np.int64)
    for kind in np.unique(kinds):
        where = np.flatnonzero(kinds == kind)
        part = records.tables[kind].take(pa.array(rows[where]))
        ids = part.column("applicant_id").fill_null(-1).to_numpy(zero_copy_only=False)
        applicants[where] = ids
        for i, payload in zip(where, encode_records(kind, part), strict=True):
            payloads[i] = payload
    return list(zip(applicant_partitions(applicants, partitions).tolist(), payloads, strict=True))


def _send(append: Script, config: StreamConfig, entries: list[tuple[int, bytes]]) -> int:
    """Append the entries; on a broker failure wait for it and send the whole chunk again. Retries made."""
    keys = config.partition_keys()
    flat: list[bytes | str] = []
    for partition, payload in entries:
        flat += [keys[partition], payload]
    blob = pack(flat)
    deadline, retries = time.monotonic() + RETRY_S, 0
    while True:
        try:
            append(args=[blob])
            return retries
        except (redis.ConnectionError, redis.TimeoutError) as error:
            if time.monotonic() > deadline:
                raise UserError(f"the stream server at {config.url} is unavailable: {error}") from error
            retries += 1
            log.warning("publish: broker unavailable (%s); retrying the chunk", error)
            time.sleep(0.2)


def append_table(client: redis.Redis, config: StreamConfig, kind: str, table: pa.Table) -> int:
    """Append one kind's rows (a contract-schema table) to the topic in row order, one atomic step per
    `CHUNK`, without retrying (a caller that answers a request lets its client retry: the duplicates change
    nothing in the store); the records appended. Raises `redis.ConnectionError`/`TimeoutError` when the
    broker is down."""
    ensure_topic(client, config)
    append = client.register_script(_APPEND)
    count = table.num_rows
    records = Records({kind: table}, np.full(count, kind), np.arange(count), np.zeros(count))
    keys = config.partition_keys()
    for start in range(0, count, CHUNK):
        entries = _chunk_entries(records, start, min(count, start + CHUNK), config.partitions)
        append(args=[pack([value for partition, payload in entries for value in (keys[partition], payload)])])
    return count


def _chunk_end(records: Records, start: int, spec: PublishSpec) -> int:
    """End of the chunk that starts at `start`: at most `CHUNK` records, 10 ms of pacing at most."""
    end = min(start + CHUNK, len(records.kinds))
    if spec.rate is not None:
        end = min(end, start + max(1, int(spec.rate / 100)))
    if spec.speedup is not None and np.isfinite(records.times[start]):
        horizon = records.times[start] + 10 * spec.speedup  # 10 ms of wall time, in event-time ms
        end = max(start + 1, min(end, int(np.searchsorted(records.times, horizon, side="left"))))
    return end


def _due(records: Records, start: int, spec: PublishSpec, started: float, first_time: float) -> float:
    """Wall time (monotonic) at which the record at `start` is due."""
    due = started
    if spec.rate is not None:
        due = max(due, started + start / spec.rate)
    if spec.speedup is not None and np.isfinite(records.times[start]):
        due = max(due, started + (records.times[start] - first_time) / 1000.0 / spec.speedup)
    return due


def publish(
    client: redis.Redis,
    config: StreamConfig,
    records: Records,
    spec: PublishSpec,
    progress: Callable[[int], None] | None = None,
) -> PublishReport:
    """Append `records` to the topic in their order, paced by `spec`."""
    ensure_topic(client, config)
    append = client.register_script(_APPEND)
    started = time.monotonic()
    count, retries, start = len(records.kinds), 0, 0
    finite = records.times[np.isfinite(records.times)]
    first_time = float(finite.min()) if len(finite) else 0.0
    while start < count:
        end = _chunk_end(records, start, spec)
        pause = _due(records, start, spec, started, first_time) - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        retries += _send(append, config, _chunk_entries(records, start, end, config.partitions))
        start = end
        if progress:
            progress(start)
    elapsed = time.monotonic() - started
    kinds, counts = np.unique(records.kinds, return_counts=True)
    return PublishReport(
        records={str(k): int(n) for k, n in zip(kinds, counts, strict=True)},
        elapsed_s=round(elapsed, 3),
        records_per_s=round(count / elapsed, 1) if elapsed > 0 else 0.0,
        retries=retries,
    )
