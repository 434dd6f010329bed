"""Idempotency keys: a retry with the same key gets the first answer, computed (and logged) once."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any


class IdempotencyConflict(Exception):
    """The key was used before with a different request body."""


class IdempotencyCache:
    """An LRU of key -> (body fingerprint, future of the response); one per ingress replica.

    Concurrent retries share one computation; a failed computation is forgotten so it can be retried.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[str, asyncio.Future[Any]]] = OrderedDict()

    async def run_once(self, key: str, fingerprint: str, compute: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        """The response for `key` and whether it was replayed from an earlier call."""
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] != fingerprint:
                raise IdempotencyConflict(key)
            self._entries.move_to_end(key)
            return await asyncio.shield(entry[1]), True
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._entries[key] = (fingerprint, future)
        self._evict()
        try:
            result = await compute()
        except BaseException as error:
            self._entries.pop(key, None)
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        future.set_result(result)
        return result, False

    def _evict(self) -> None:
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
