"""`tala-ray stream status`: per partition its length, the group's lag and pending entries; per consumer
its pending entries, idle time and records applied; records applied per second; quarantined records."""

from __future__ import annotations

import time
from collections import Counter

import redis
from pydantic import BaseModel

from tala_ray.streaming.store import OnlineStore
from tala_ray.streaming.topic import StreamConfig


class PartitionStatus(BaseModel):
    partition: int
    length: int
    lag: int | None  # entries not yet delivered to the group (None: no group yet, all of them)
    pending: int  # delivered, not yet applied
    last_delivered: str | None


class ConsumerStatus(BaseModel):
    name: str
    pending: int
    idle_ms: int  # since its last read or claim
    applied: int


class StreamStatus(BaseModel):
    topic: str
    group: str
    partitions: list[PartitionStatus]
    consumers: list[ConsumerStatus]
    applied: dict[str, int]  # records applied to the store, per kind
    records_per_s: float  # applied per second over the sampling interval
    quarantined: int
    quarantine_reasons: dict[str, int]

    @property
    def backlog(self) -> int:
        return sum((p.length if p.lag is None else p.lag) + p.pending for p in self.partitions)


def _partition(client: redis.Redis, config: StreamConfig, partition: int) -> PartitionStatus:
    key = config.partition_key(partition)
    length = client.xlen(key)
    group = next((g for g in client.xinfo_groups(key) if g["name"].decode() == config.group), None) if length else None
    if group is None:
        return PartitionStatus(partition=partition, length=length, lag=None, pending=0, last_delivered=None)
    return PartitionStatus(
        partition=partition,
        length=length,
        lag=group["lag"],
        pending=group["pending"],
        last_delivered=group["last-delivered-id"].decode(),
    )


def _consumers(client: redis.Redis, config: StreamConfig, applied: dict[str, int]) -> list[ConsumerStatus]:
    pending: Counter[str] = Counter()
    idle: dict[str, int] = {}
    for key in config.partition_keys():
        if not client.exists(key):
            continue
        try:
            members = client.xinfo_consumers(key, config.group)
        except redis.ResponseError:  # no group on this partition yet
            continue
        for member in members:
            name = member["name"].decode()
            pending[name] += member["pending"]
            idle[name] = min(idle.get(name, member["idle"]), member["idle"])
    return [
        ConsumerStatus(name=name, pending=pending[name], idle_ms=idle[name], applied=applied.get(f"consumer:{name}", 0))
        for name in sorted(idle)
    ]


def _applied_total(counters: dict[str, int]) -> int:
    return sum(n for name, n in counters.items() if not name.startswith("consumer:"))


def stream_status(client: redis.Redis, config: StreamConfig, interval_s: float = 1.0) -> StreamStatus:
    """The topic's and the group's state now; the apply rate is sampled over `interval_s`."""
    store = OnlineStore(client, config)
    before, started = _applied_total(store.counters()), time.monotonic()
    time.sleep(interval_s)
    counters = store.counters()
    rate = (_applied_total(counters) - before) / (time.monotonic() - started)
    reasons: Counter[str] = Counter()
    for _, fields in client.xrange(config.quarantine_key):
        reasons[fields[b"reason"].decode()] += 1
    return StreamStatus(
        topic=config.topic,
        group=config.group,
        partitions=[_partition(client, config, p) for p in range(config.partitions)],
        consumers=_consumers(client, config, counters),
        applied={k: v for k, v in counters.items() if not k.startswith("consumer:") and k != "quarantined"},
        records_per_s=round(rate, 1),
        quarantined=counters.get("quarantined", 0),
        quarantine_reasons=dict(reasons),
    )


def format_status(status: StreamStatus) -> str:
    """The status as the CLI prints it."""
    lines = [f"topic {status.topic!r}, group {status.group!r}: backlog {status.backlog:,}"]
    lines.append(f"{'partition':>9} {'length':>10} {'lag':>10} {'pending':>8}  last delivered")
    for p in status.partitions:
        lag = "-" if p.lag is None else f"{p.lag:,}"
        lines.append(f"{p.partition:>9} {p.length:>10,} {lag:>10} {p.pending:>8,}  {p.last_delivered or '-'}")
    lines.append(f"{'consumer':<20} {'pending':>8} {'idle ms':>9} {'applied':>10}")
    for c in status.consumers:
        lines.append(f"{c.name:<20} {c.pending:>8,} {c.idle_ms:>9,} {c.applied:>10,}")
    applied = ", ".join(f"{k} {v:,}" for k, v in sorted(status.applied.items())) or "nothing"
    lines.append(f"applied: {applied}; {status.records_per_s:,.0f} records/s")
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(status.quarantine_reasons.items()))
    lines.append(f"quarantined: {status.quarantined:,}" + (f" ({reasons})" if reasons else ""))
    return "\n".join(lines)
