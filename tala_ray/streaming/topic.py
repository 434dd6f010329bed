"""A Kafka-shaped topic on Valkey streams: partitions, offsets, a consumer group, seeking by offset or time.

A topic of N partitions is N streams `<prefix>:<topic>:<p>`; a record's partition is Kafka's default
partitioner on its applicant id (`partitioner.py`); an offset is a stream entry id (`<ms>-<seq>`,
assigned by the broker at append time, increasing); the consumer group is an XGROUP on every partition.
The partition count is stored on the server at creation (like a Kafka topic's metadata) and every
client checks it, so no producer hashes with another count.
"""

from __future__ import annotations

import redis
from pydantic import BaseModel, ConfigDict, Field
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from tala_ray.core.errors import UserError
from tala_ray.streaming.codec import record_time


class StreamConfig(BaseModel):
    """Where the stream and the store live on the server, and how the topic is laid out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="redis:// URL of the Valkey server (see `server.stream_url`).")
    prefix: str = Field("tala", min_length=1, description="Namespace of every key of the stream and the store.")
    topic: str = Field("raw", min_length=1, description="Topic of the raw records (events, loans, applicants).")
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of the topic when it is created.")
    group: str = Field("online-store", min_length=1, description="Consumer group that feeds the online store.")

    def partition_key(self, partition: int) -> str:
        return f"{self.prefix}:{self.topic}:{partition}"

    def partition_keys(self) -> list[str]:
        return [self.partition_key(p) for p in range(self.partitions)]

    @property
    def quarantine_key(self) -> str:
        return f"{self.prefix}:{self.topic}:quarantine"

    @property
    def topics_key(self) -> str:
        return f"{self.prefix}:topics"


def connect(url: str, retries: int = 3) -> redis.Redis:
    """A client of the server at `url`: bytes replies, timeouts so a dead server is noticed, and `retries`
    quick reconnection attempts per command (0 for a caller that must answer fast, as serving does)."""
    retry = Retry(ExponentialWithJitterBackoff(base=0.02, cap=0.5), retries)
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=2, retry=retry)


def open_topic(url: str, partitions: int | None = None) -> tuple[redis.Redis, StreamConfig]:
    """A checked client and the topic's config: its partition count as recorded on the server, else
    `partitions` (or the default) for a topic created by this client. `UserError` if the server is down."""
    client = connect(url)
    probe = StreamConfig(url=url)
    try:
        stored = client.hget(probe.topics_key, probe.topic)
    except redis.RedisError as error:
        raise UserError(f"the stream server at {url} is unavailable: {error}") from error
    if stored is not None and partitions is not None and int(stored) != partitions:
        raise UserError(f"--partitions {partitions}: topic {probe.topic!r} already has {int(stored)} partitions")
    count = int(stored) if stored is not None else partitions or probe.partitions
    return client, probe.model_copy(update={"partitions": count})


def ensure_topic(client: redis.Redis, config: StreamConfig) -> None:
    """Record the topic's partition count on first use; refuse a config with another count afterwards."""
    client.hsetnx(config.topics_key, config.topic, config.partitions)
    stored = int(client.hget(config.topics_key, config.topic))
    if stored != config.partitions:
        raise UserError(f"topic {config.topic!r} has {stored} partitions on the server, not {config.partitions}")


def ensure_group(client: redis.Redis, config: StreamConfig) -> None:
    """Create the consumer group on every partition (from its start) where it does not exist yet."""
    ensure_topic(client, config)
    for key in config.partition_keys():
        try:
            client.xgroup_create(key, config.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise


def seek(client: redis.Redis, config: StreamConfig, offsets: dict[int, str]) -> None:
    """Set the group's position per partition: the next record delivered is the first after `offsets[p]`
    (Kafka's `seek` takes the next offset itself; here "0-0" replays a partition from its start)."""
    ensure_group(client, config)
    for partition, offset in offsets.items():
        client.xgroup_setid(config.partition_key(partition), config.group, offset)


def offset_before_time(client: redis.Redis, key: str, at_ms: int) -> str:
    """The offset of the last record of partition `key` whose time is before `at_ms` ("0-0" if none).

    Like Kafka's `offsets_for_times`, this bisects the log on record time, so it is exact when the
    partition is in time order (a replay); a late record counts where it arrived."""

    def before(ms: int) -> bool:  # the first record appended at or after broker time `ms` is before `at_ms`
        probe = client.xrange(key, min=f"{ms}-0", count=1)
        return bool(probe) and record_time(probe[0][1]) < at_ms

    first, last = client.xrange(key, count=1), client.xrevrange(key, count=1)
    if not first or not before(_entry_ms(first[0][0])):
        return "0-0"
    low, high = _entry_ms(first[0][0]), _entry_ms(last[0][0]) + 1  # before(low) and not before(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if before(middle) else (low, middle)
    same_ms = client.xrange(key, min=str(low), max=str(low))  # the answer was appended in ms `low`
    return [entry_id for entry_id, fields in same_ms if record_time(fields) < at_ms][-1].decode()


def _entry_ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])


def group_offsets_at_time(client: redis.Redis, config: StreamConfig, at_ms: int) -> dict[int, str]:
    """Per partition, the offset of its last record before `at_ms`."""
    return {p: offset_before_time(client, config.partition_key(p), at_ms) for p in range(config.partitions)}
