"""Bootstrap: the online store bulk-loaded from the offline raw tables with Ray Data, then the consumer
group moved to the matching offset, so the stream takes over with no gap and no double count.

The offline tables cover every record before `until_ms` (a snapshot's cut); the stream holds the records
in event-time order (the publisher's replay). Per partition the group resumes after the last record
before `until_ms`: every record before the cut comes from the snapshot, every one at or after it from
the stream, each exactly once (the counters show it, not only the idempotent store).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from tala_ray.core.storage import join_path, resolve_filesystem
from tala_ray.data import validation
from tala_ray.streaming.codec import KIND_TABLE, TIME_COLUMN
from tala_ray.streaming.ingest import table_ops
from tala_ray.streaming.store import OnlineStore
from tala_ray.streaming.topic import StreamConfig, connect, group_offsets_at_time, seek


class BootstrapReport(BaseModel):
    """Records loaded per kind (and quarantined), and where the group resumes per partition."""

    until_ms: int
    loaded: dict[str, int]
    quarantined: int
    offsets: dict[int, str]


def load_batch(batch: pa.Table, *, kind: str, config: StreamConfig, until_ms: int) -> pa.Table:
    """Write the rows of one raw batch before `until_ms` (or without a time: they are quarantined) to the
    store; one row of counts."""
    table = validation.conform(KIND_TABLE[kind], batch)
    times = table.column(TIME_COLUMN[kind])
    table = table.filter(pc.fill_null(pc.less(times.cast(pa.int64()), until_ms), True))
    ops = table_ops(kind, table, [None] * table.num_rows)
    client = connect(config.url)
    try:
        OnlineStore(client, config).apply(ops)
    finally:
        client.close()
    quarantined = sum(op.op == "q" for op in ops)
    return pa.table({"kind": [kind], "loaded": [len(ops) - quarantined], "quarantined": [quarantined]})


def bootstrap(world: str, config: StreamConfig, until_ms: int) -> BootstrapReport:
    """Load the records of `world` before `until_ms` into the store (Ray Data), then set the group's offsets
    so that consumers apply the stream's records from `until_ms` on."""
    import ray

    client = connect(config.url)
    try:
        offsets = group_offsets_at_time(client, config, until_ms)
        filesystem, root = resolve_filesystem(world)
        loads = []
        for kind, table in KIND_TABLE.items():
            dataset = ray.data.read_parquet(join_path(root, table), filesystem=filesystem)
            validation.check_schema(table, dataset.schema().base_schema)
            fn_kwargs = {"kind": kind, "config": config, "until_ms": until_ms}
            loads.append(dataset.map_batches(load_batch, batch_format="pyarrow", fn_kwargs=fn_kwargs))
        counts = loads[0].union(*loads[1:]).take_all()  # one execution for the three tables
        seek(client, config, offsets)
    finally:
        client.close()
    loaded_by_kind = {kind: sum(c["loaded"] for c in counts if c["kind"] == kind) for kind in KIND_TABLE}
    return BootstrapReport(
        until_ms=until_ms,
        loaded=loaded_by_kind,
        quarantined=sum(c["quarantined"] for c in counts),
        offsets=offsets,
    )
