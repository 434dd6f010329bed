"""A consumer of the group that feeds the online store: read a batch from every partition (XREADGROUP),
decode and validate it, apply it with the acknowledgements in one script (`OnlineStore.apply`).

Every `claim_every_s` it also takes over entries another consumer left pending for `claim_idle_ms`
(XAUTOCLAIM): that consumer died, or stalled; applying them is safe either way (see `store`). A broker
failure makes it wait and retry; nothing read but not applied is lost, it stays pending.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from functools import lru_cache

import msgpack
import redis
from pydantic import BaseModel, ConfigDict, Field

from tala_ray.streaming.codec import VALUE
from tala_ray.streaming.ingest import entry_ops
from tala_ray.streaming.store import OnlineStore
from tala_ray.streaming.topic import StreamConfig, connect, ensure_group

log = logging.getLogger(__name__)

Entry = tuple[bytes, bytes, bytes]  # partition key, entry id, wire record

# ARGV: group, consumer, count, partition keys. XREADGROUP without BLOCK (scripts cannot block).
_READ = """
local streams = {}
for i = 4, #ARGV do streams[#streams + 1] = ARGV[i] end
for i = 4, #ARGV do streams[#streams + 1] = '>' end
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', unpack(streams))
if not reply then return false end
return cmsgpack.pack(reply)
"""


def _value(fields: tuple[bytes, ...]) -> bytes:
    """The wire record among an entry's flat (field, value, ...) pairs (empty when it has none)."""
    for i in range(0, len(fields) - 1, 2):
        if fields[i] == VALUE:
            return fields[i + 1]
    return b""


class ConsumerSpec(BaseModel):
    """How a consumer reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch: int = Field(500, ge=1, le=10_000, description="Entries read from each partition at a time.")
    block_ms: int = Field(200, ge=1, description="How long a read waits for new entries.")
    claim_idle_ms: int = Field(2_000, ge=1, description="Pending this long, an entry is taken over.")
    claim_every_s: float = Field(1.0, gt=0, description="How often to look for such entries.")


class Consumer:
    """One member of the consumer group (one thread's worth of work; `run` until `stop` is set)."""

    def __init__(self, config: StreamConfig, spec: ConsumerSpec, name: str | None = None) -> None:
        self.config, self.spec = config, spec
        self.name = name or f"consumer-{uuid.uuid4().hex[:8]}"
        self.client = connect(config.url)
        self._read_script = self.client.register_script(_READ)
        self.store = OnlineStore(self.client, config)
        self.keys = config.partition_keys()
        self.applied = self.skipped = self.claimed = 0
        self._next_claim = 0.0
        ensure_group(self.client, config)

    def _read(self) -> list[Entry]:
        """New entries of every partition: through the read script while there are some (one msgpack reply
        instead of a RESP array per entry, ~5x cheaper to parse), a blocking XREADGROUP when idle."""
        packed = self._read_script(args=[self.config.group, self.name, self.spec.batch, *self.keys])
        if packed:
            replies = msgpack.unpackb(packed, raw=True, use_list=False)
            return [(key, entry_id, _value(fields)) for key, entries in replies for entry_id, fields in entries]
        replies = self.client.xreadgroup(
            self.config.group,
            self.name,
            dict.fromkeys(self.keys, ">"),
            count=self.spec.batch,
            block=self.spec.block_ms,
        )
        return [
            (key, entry_id, fields.get(VALUE, b"")) for key, entries in replies or [] for entry_id, fields in entries
        ]

    def _claim(self) -> list[Entry]:
        """Entries pending too long for another (or a former) consumer, now ours."""
        out: list[Entry] = []
        for key in self.keys:  # up to `batch` entries of each partition, as a read takes
            start, taken = "0-0", 0
            while taken < self.spec.batch:
                start, entries, deleted = self.client.xautoclaim(
                    key, self.config.group, self.name, self.spec.claim_idle_ms, start, count=self.spec.batch - taken
                )
                out += [(key.encode(), entry_id, fields.get(VALUE, b"")) for entry_id, fields in entries]
                taken += len(entries)
                if deleted:  # trimmed away before anyone applied them: nothing to apply, acknowledge
                    self.client.xack(key, self.config.group, *deleted)
                if start in (b"0-0", "0-0"):
                    break
        self.claimed += len(out)
        return out

    def step(self) -> int:
        """Claim (when due) or read one batch and apply it; the number of entries handled."""
        entries: list[Entry] = []
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + self.spec.claim_every_s
            entries = self._claim()
        if not entries:
            entries = self._read()
        if entries:
            applied, skipped = self.store.apply(entry_ops(entries), consumer=self.name)
            self.applied, self.skipped = self.applied + applied, self.skipped + skipped
        return len(entries)

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set; wait out broker failures (backing off up to 2 s)."""
        backoff = 0.1
        while not stop.is_set():
            try:
                self.step()
                backoff = 0.1
            except (redis.ConnectionError, redis.TimeoutError) as error:
                log.warning("consumer %s: broker unavailable (%s); retrying in %.1fs", self.name, error, backoff)
                stop.wait(backoff)
                backoff = min(2.0, backoff * 2)

    def stats(self) -> dict[str, int | str]:
        return {"name": self.name, "applied": self.applied, "skipped": self.skipped, "claimed": self.claimed}


class ConsumerWorker:
    """A consumer in its own Ray actor process (`consumer_actor`): `run` in one thread, the other methods
    (stop, stats, pid) answered meanwhile."""

    def __init__(self, config: StreamConfig, spec: ConsumerSpec, name: str | None = None) -> None:
        self.consumer = Consumer(config, spec, name)
        self._stop = threading.Event()

    def run(self) -> dict[str, int | str]:
        self.consumer.run(self._stop)
        return self.consumer.stats()

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> dict[str, int | str]:
        return self.consumer.stats()

    def name(self) -> str:
        return self.consumer.name

    def pid(self) -> int:
        return os.getpid()


@lru_cache
def consumer_actor(num_cpus: float = 0.25):
    """The Ray actor class of `ConsumerWorker` (max_concurrency 2: the run loop and the control calls)."""
    import ray

    return ray.remote(num_cpus=num_cpus, max_concurrency=2, max_restarts=0)(ConsumerWorker)
