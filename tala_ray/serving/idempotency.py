"""Idempotency keys: a retry with the same key gets the first answer, computed (and logged) once,
whichever ingress replica it lands on, across crashes of replicas and restarts of the store.

The keys live in a Redis-compatible server (`url`, else `TALA_STREAM_URL`, else the embedded Valkey of
`tala_ray.streaming.server`, whose AOF is fsynced before each reply), so answered keys survive a restart
of the `IdempotencyStore` deployment and of the server itself. A claim is a short lease (`lease_s`)
that the claiming ingress renews with a heartbeat while it computes: a replica that dies stops renewing
and its claim lapses within `lease_s`, so a retry decides the key again instead of waiting for an answer
that never comes. `complete` keeps the first answer stored for a key (a late second computation, after a
lapsed lease, gets the first answer back, not its own).

`IdempotencyLedger` is the store logic (atomic Lua scripts); `IdempotencyStore` the deployment every
ingress replica calls; `SharedIdempotency` the ingress side: claim, compute with a heartbeat, complete
(or release on failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from tala_ray.streaming.server import stream_url

CLAIMED, DONE, PENDING, CONFLICT = "claimed", "done", "pending", "conflict"
POLL_S = 0.02  # how often a waiting claim looks again for another replica's answer

# KEYS: claim, done, lru, clock. ARGV: token, fingerprint, lease_ms, key.
_CLAIM = """
local done = redis.call('HMGET', KEYS[2], 'fp', 'result')
if done[1] then
  if done[1] ~= ARGV[2] then return {'conflict'} end
  redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[4])
  return {'done', done[2]}
end
local fp = redis.call('HGET', KEYS[1], 'fp')
if fp then
  if fp ~= ARGV[2] then return {'conflict'} end
  return {'pending'}
end
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'fp', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'claimed'}
"""
# KEYS: claim. ARGV: token, lease_ms. 1 while the claim is still the caller's.
_RENEW = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS: claim, done, lru, clock. ARGV: token, fingerprint, result, key, capacity, done prefix.
# Returns the stored (first) answer and 1 when it is the caller's.
_COMPLETE = """
local first = redis.call('HGET', KEYS[2], 'result')
if not first then
  redis.call('HSET', KEYS[2], 'fp', ARGV[2], 'result', ARGV[3])
  first = ARGV[3]
end
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[4])
local over = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[5])
if over > 0 then
  for i, old in ipairs(redis.call('ZPOPMIN', KEYS[3], over)) do
    if i % 2 == 1 then redis.call('DEL', ARGV[6] .. old) end
  end
end
return {first, first == ARGV[3] and 1 or 0}
"""
# KEYS: claim. ARGV: token.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class IdempotencyConflict(Exception):
    """The key was used before with a different request body."""


class LedgerConfig(BaseModel):
    """The store's `user_config`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    capacity: int = Field(10_000, ge=1, description="Answered keys remembered (least recently used dropped first).")
    lease_s: float = Field(
        2.0, gt=0, le=60, description="A claim lapses this long after its holder's last heartbeat (a dead replica's)."
    )
    wait_s: float = Field(5.0, gt=0, description="How long one claim waits for another replica's answer.")
    url: str | None = Field(None, description="Redis-compatible server; default TALA_STREAM_URL, else embedded.")
    namespace: str = Field("tala:idempotency", min_length=1, description="Prefix of the store's keys.")

    @property
    def heartbeat_s(self) -> float:
        """How often a holder renews its claim (three renewals per lease)."""
        return self.lease_s / 3


class IdempotencyLedger:
    """Keys -> (body fingerprint, first answer or a leased claim), in a Redis-compatible server."""

    def __init__(self, config: LedgerConfig) -> None:
        self.config = config
        self._client = aioredis.from_url(stream_url(config.url))
        self._claim = self._client.register_script(_CLAIM)
        self._renew = self._client.register_script(_RENEW)
        self._complete = self._client.register_script(_COMPLETE)
        self._release = self._client.register_script(_RELEASE)

    def _keys(self, key: str) -> list[str]:
        ns = self.config.namespace
        return [f"{ns}:claim:{key}", f"{ns}:done:{key}", f"{ns}:lru", f"{ns}:clock"]

    async def claim(self, key: str, fingerprint: str, token: str) -> dict[str, Any]:
        """`claimed` (the caller, `token`, decides and renews), `done` with the first answer,
        `conflict`, or `pending` (another caller is still deciding after `wait_s`: ask again)."""
        lease_ms = int(self.config.lease_s * 1000)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.wait_s
        while True:
            state, *rest = await self._claim(self._keys(key), [token, fingerprint, lease_ms, key])
            state = state.decode()
            if state == DONE:
                return {"state": DONE, "result": json.loads(rest[0])}
            if state != PENDING or loop.time() >= deadline:
                return {"state": state}
            await asyncio.sleep(POLL_S)

    async def renew(self, key: str, token: str) -> bool:
        """Extend the caller's claim by `lease_s`; False when it is no longer the caller's."""
        return bool(await self._renew(self._keys(key)[:1], [token, int(self.config.lease_s * 1000)]))

    async def complete(self, key: str, fingerprint: str, token: str, result: Any) -> tuple[Any, bool]:
        """Record the answer of a claimed key (unless one is stored already); return the stored one and
        whether it is another computation's (replayed)."""
        keys = self._keys(key)
        args = [token, fingerprint, json.dumps(result), key, self.config.capacity, f"{self.config.namespace}:done:"]
        first, ours = await self._complete(keys, args)
        return (result, False) if ours else (json.loads(first), True)

    async def release(self, key: str, token: str) -> None:
        """Drop the caller's claim on a key whose decision failed, so a retry decides it."""
        await self._release(self._keys(key)[:1], [token])

    async def close(self) -> None:
        await self._client.aclose()


@serve.deployment(
    name="IdempotencyStore", num_replicas=1, max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0.05}
)
class IdempotencyStore:
    """The ledger every ingress replica shares (stateless itself: a restart forgets nothing). A call
    that finds the server gone connects again once (the embedded server is started again on its AOF)."""

    def __init__(self) -> None:
        self._ledger: IdempotencyLedger | None = None

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        config = LedgerConfig.model_validate(user_config)
        if self._ledger is None or (config.url, config.namespace) != (
            self._ledger.config.url,
            self._ledger.config.namespace,
        ):
            self._ledger = IdempotencyLedger(config)
        self._ledger.config = config

    def heartbeat_s(self) -> float:
        return self._ledger.config.heartbeat_s

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._ledger, method)(*args)
        except redis.exceptions.ConnectionError:
            self._ledger = IdempotencyLedger(self._ledger.config)
            return await getattr(self._ledger, method)(*args)

    async def claim(self, key: str, fingerprint: str, token: str) -> dict[str, Any]:
        return await self._call("claim", key, fingerprint, token)

    async def renew(self, key: str, token: str) -> bool:
        return await self._call("renew", key, token)

    async def complete(self, key: str, fingerprint: str, token: str, result: Any) -> tuple[Any, bool]:
        return await self._call("complete", key, fingerprint, token, result)

    async def release(self, key: str, token: str) -> None:
        await self._call("release", key, token)


class SharedIdempotency:
    """The ingress side: run `compute` once per key across replicas, through the store's handle."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._heartbeat_s: float | None = None

    async def run_once(self, key: str, fingerprint: str, compute: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        """The answer for `key` and whether it was replayed from an earlier call."""
        token = uuid.uuid4().hex
        while True:
            claim = await self._store.claim.remote(key, fingerprint, token)
            if claim["state"] == CONFLICT:
                raise IdempotencyConflict(key)
            if claim["state"] == DONE:
                return claim["result"], True
            if claim["state"] == CLAIMED:
                break
        if self._heartbeat_s is None:
            self._heartbeat_s = await self._store.heartbeat_s.remote()
        heartbeat = asyncio.create_task(self._renew(key, token))
        try:
            result = await compute()
        except BaseException:
            heartbeat.cancel()
            await self._store.release.remote(key, token)
            raise
        heartbeat.cancel()
        return tuple(await self._store.complete.remote(key, fingerprint, token, result))

    async def _renew(self, key: str, token: str) -> None:
        """Keep the claim alive while computing (a failed renewal, e.g. the store restarting, is retried)."""
        while True:
            await asyncio.sleep(self._heartbeat_s)
            with contextlib.suppress(Exception):
                await self._store.renew.remote(key, token)
