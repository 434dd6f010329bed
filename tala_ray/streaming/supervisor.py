"""Consumers scaled with the backlog: a small loop that keeps between `minimum` and `maximum` consumer
actors, one for every `backlog_per_consumer` records not yet applied (undelivered plus pending).

A consumer that died (its run call failed) is replaced on the next tick; its pending entries are taken
over by the others (XAUTOCLAIM), after which its name is removed from the group. A consumer scaled
away is stopped first: it finishes its batch, so it leaves nothing pending.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict, Field

from tala_ray.streaming.consumer import ConsumerSpec, consumer_actor
from tala_ray.streaming.topic import StreamConfig, connect, ensure_group

log = logging.getLogger(__name__)


class ScalingSpec(BaseModel):
    """How many consumers for how much backlog."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    minimum: int = Field(1, ge=0, description="Consumers kept even without a backlog.")
    maximum: int = Field(4, ge=1, description="Consumers at most.")
    backlog_per_consumer: int = Field(20_000, ge=1, description="Backlog that justifies one more consumer.")
    num_cpus: float = Field(0.25, ge=0, description="Ray CPUs reserved by each consumer actor.")


def desired_consumers(backlog: int, spec: ScalingSpec) -> int:
    """Consumers for a backlog: one per `backlog_per_consumer` records, within [minimum, maximum]."""
    return min(spec.maximum, max(spec.minimum, math.ceil(backlog / spec.backlog_per_consumer)))


def group_backlog(client: redis.Redis, config: StreamConfig) -> int:
    """Records of the topic the group has not applied yet: not delivered (lag) plus delivered but pending."""
    total = 0
    for key in config.partition_keys():
        for group in client.xinfo_groups(key):
            if group["name"].decode() == config.group:
                lag = group["lag"]
                if lag is None:  # undeterminable after deletions: count from the last delivered entry
                    lag = len(client.xrange(key, min=f"({group['last-delivered-id'].decode()}"))
                total += int(lag) + int(group["pending"])
    return total


@dataclass
class _Member:
    actor: Any
    run: Any  # ObjectRef of the actor's run call: ready when the consumer stopped or died
    name: str


class Supervisor:
    """Keeps the consumer actors of the group in step with its backlog (call `tick` periodically)."""

    def __init__(self, config: StreamConfig, consumer: ConsumerSpec, scaling: ScalingSpec) -> None:
        self.config, self.consumer, self.scaling = config, consumer, scaling
        self.client = connect(config.url)
        self.members: list[_Member] = []
        self.departed: set[str] = set()
        self._actor_class = consumer_actor(scaling.num_cpus)
        ensure_group(self.client, config)

    def _add(self) -> None:
        import ray

        actor = self._actor_class.remote(self.config, self.consumer)
        name = ray.get(actor.name.remote())
        self.members.append(_Member(actor, actor.run.remote(), name))
        log.info("consumer %s started (%d running)", name, len(self.members))

    def _remove(self) -> None:
        import ray

        member = self.members.pop()
        member.actor.stop.remote()
        ray.wait([member.run], timeout=30)
        ray.kill(member.actor)
        self.departed.add(member.name)
        log.info("consumer %s stopped (%d running)", member.name, len(self.members))

    def _reap(self) -> None:
        """Drop members whose actor died; forget group members that left with nothing pending."""
        import ray

        if self.members:
            done, _ = ray.wait([m.run for m in self.members], num_returns=len(self.members), timeout=0)
            for member in [m for m in self.members if m.run in done]:
                log.warning("consumer %s is gone; its pending entries will be taken over", member.name)
                self.members.remove(member)
                self.departed.add(member.name)
        self._forget_departed()

    def _forget_departed(self) -> None:
        """Remove from the group the consumers that left once nothing is pending for them (deleting one
        with pending entries would make those unclaimable)."""
        for name in list(self.departed):
            if self._pending(name) == 0:
                for key in self.config.partition_keys():
                    self.client.xgroup_delconsumer(key, self.config.group, name)
                self.departed.discard(name)

    def _pending(self, name: str) -> int:
        total = 0
        for key in self.config.partition_keys():
            summary = self.client.xpending(key, self.config.group)
            total += sum(c["pending"] for c in summary["consumers"] if c["name"].decode() == name)
        return total

    def tick(self) -> int:
        """Reap, measure the backlog, start or stop consumers; the number running."""
        self._reap()
        target = desired_consumers(group_backlog(self.client, self.config), self.scaling)
        while len(self.members) < target:
            self._add()
        while len(self.members) > target:
            self._remove()
        return len(self.members)

    def run(self, stop: threading.Event, every_s: float = 2.0) -> None:
        """Tick every `every_s` until `stop` is set, then stop every consumer."""
        try:
            while not stop.is_set():
                self.tick()
                stop.wait(every_s)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop every consumer (each finishes its batch first)."""
        while self.members:
            self._remove()
        self._forget_departed()
