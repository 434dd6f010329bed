"""Idempotency keys: a retry with the same key gets the first answer, computed (and logged) once,
whichever ingress replica it lands on.

`IdempotencyLedger` keeps the keys (one instance, in the `IdempotencyStore` deployment that every
ingress replica calls); `SharedIdempotency` is the ingress side: claim the key, compute, then
complete (or release on failure). A key whose owner died is claimable again after `lease_s`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from ray import serve

CLAIMED, DONE, PENDING, CONFLICT = "claimed", "done", "pending", "conflict"


class IdempotencyConflict(Exception):
    """The key was used before with a different request body."""


class LedgerConfig(BaseModel):
    """The store's `user_config`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    capacity: int = Field(10_000, ge=1, description="Answered keys remembered (least recently used dropped first).")
    lease_s: float = Field(60.0, gt=0, description="A key being decided longer than this may be claimed again.")
    wait_s: float = Field(5.0, gt=0, description="How long one claim waits for another replica's answer.")


@dataclass
class _Entry:
    fingerprint: str
    claimed_at: float
    done: bool = False
    result: Any = None
    event: asyncio.Event = field(default_factory=asyncio.Event)


class IdempotencyLedger:
    """Keys -> (body fingerprint, answer or in progress)."""

    def __init__(self, config: LedgerConfig) -> None:
        self.config = config
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    async def claim(self, key: str, fingerprint: str) -> dict[str, Any]:
        """`claimed` (the caller decides), `done` with the first answer, `conflict`, or `pending`
        (another caller is still deciding after `wait_s`: ask again)."""
        entry = self._entries.get(key)
        if entry is not None and not entry.done and time.monotonic() - entry.claimed_at > self.config.lease_s:
            self._drop(key)
            entry = None
        if entry is None:
            self._entries[key] = _Entry(fingerprint, time.monotonic())
            return {"state": CLAIMED}
        if entry.fingerprint != fingerprint:
            return {"state": CONFLICT}
        if not entry.done:
            try:
                await asyncio.wait_for(entry.event.wait(), self.config.wait_s)
            except TimeoutError:
                return {"state": PENDING}
            return await self.claim(key, fingerprint)  # answered, or released (then claimable)
        self._entries.move_to_end(key)
        return {"state": DONE, "result": entry.result}

    def complete(self, key: str, result: Any) -> None:
        """Record the answer of a claimed key and wake whoever waits for it."""
        entry = self._entries.get(key)
        if entry is None:
            return
        entry.done, entry.result = True, result
        entry.event.set()
        self._entries.move_to_end(key)
        self._evict()

    def release(self, key: str) -> None:
        """Forget a claimed key whose decision failed, so a retry decides it."""
        self._drop(key)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            entry.event.set()

    def _evict(self) -> None:
        """Drop the least recently used answered keys over `capacity` (keys being decided stay)."""
        while len(self._entries) > self.config.capacity:
            oldest = next((key for key, entry in self._entries.items() if entry.done), None)
            if oldest is None:
                return
            self._drop(oldest)


@serve.deployment(
    name="IdempotencyStore", num_replicas=1, max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0.05}
)
class IdempotencyStore:
    """The one ledger every ingress replica shares (waiting claims do not block other calls)."""

    def __init__(self) -> None:
        self._ledger: IdempotencyLedger | None = None

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        config = LedgerConfig.model_validate(user_config)
        if self._ledger is None:
            self._ledger = IdempotencyLedger(config)
        self._ledger.config = config

    async def claim(self, key: str, fingerprint: str) -> dict[str, Any]:
        return await self._ledger.claim(key, fingerprint)

    def complete(self, key: str, result: Any) -> None:
        self._ledger.complete(key, result)

    def release(self, key: str) -> None:
        self._ledger.release(key)


class SharedIdempotency:
    """The ingress side: run `compute` once per key across replicas, through the store's handle."""

    def __init__(self, store: Any) -> None:
        self._store = store

    async def run_once(self, key: str, fingerprint: str, compute: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        """The answer for `key` and whether it was replayed from an earlier call."""
        while True:
            claim = await self._store.claim.remote(key, fingerprint)
            if claim["state"] == CONFLICT:
                raise IdempotencyConflict(key)
            if claim["state"] == DONE:
                return claim["result"], True
            if claim["state"] == CLAIMED:
                break
        try:
            result = await compute()
        except BaseException:
            await self._store.release.remote(key)
            raise
        await self._store.complete.remote(key, result)
        return result, False
