"""Idempotency keys on a real embedded Valkey: once per key across replicas, first answer on every
retry, a dead holder's claim released within its lease, answered keys kept across store restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from tala_ray.core.settings import get_settings
from tala_ray.serving.idempotency import (
    IdempotencyConflict,
    IdempotencyLedger,
    IdempotencyStore,
    LedgerConfig,
    SharedIdempotency,
)
from tala_ray.serving.local_graph import LocalStep
from tala_ray.streaming.server import kill_server, running_server, stop_server


def ledger_config(url: str, **extra) -> dict:
    return {"url": url, "namespace": f"t{uuid.uuid4().hex[:8]}", **extra}


def test_idempotency_runs_once_replays_and_refuses_a_different_body(valkey):
    """Two ingress-side `SharedIdempotency`s (as two replicas) share one store (the deployment class,
    called in process like a handle)."""
    calls = []

    async def compute():
        calls.append(1)
        await asyncio.sleep(0.01)
        return {"n": len(calls)}

    async def scenario():
        store = LocalStep(IdempotencyStore, ledger_config(valkey.url, capacity=2))
        replica_a, replica_b = SharedIdempotency(store), SharedIdempotency(store)
        first, second = await asyncio.gather(
            replica_a.run_once("a", "h1", compute), replica_b.run_once("a", "h1", compute)
        )
        assert first[0] == second[0] == {"n": 1} and calls == [1], "decided once: the other waited for its answer"
        assert {first[1], second[1]} == {False, True}
        with pytest.raises(IdempotencyConflict):
            await replica_b.run_once("a", "h2", compute)
        await replica_a.run_once("b", "h", compute)
        await replica_b.run_once("c", "h", compute)  # evicts "a"
        assert await replica_a.run_once("a", "h1", compute) == ({"n": 4}, False)

        async def failing():
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await replica_a.run_once("f", "h", failing)
        assert await replica_b.run_once("f", "h", compute) == ({"n": 5}, False)  # a failure is not remembered

    asyncio.run(scenario())


def test_a_late_second_computation_gets_the_first_answer(valkey):
    async def scenario():
        ledger = IdempotencyLedger(LedgerConfig(**ledger_config(valkey.url, lease_s=0.2, wait_s=0.05)))
        assert (await ledger.claim("k", "h", "t1"))["state"] == "claimed"  # t1 stops renewing: lapses
        assert (await ledger.claim("k", "h", "t2"))["state"] == "pending"
        await asyncio.sleep(0.25)
        assert (await ledger.claim("k", "h", "t2"))["state"] == "claimed"
        assert await ledger.complete("k", "h", "t2", {"decision": "approve"}) == ({"decision": "approve"}, False)
        assert await ledger.complete("k", "h", "t1", {"decision": "decline"}) == ({"decision": "approve"}, True)
        assert await ledger.claim("k", "h", "t3") == {"state": "done", "result": {"decision": "approve"}}
        await ledger.close()

    asyncio.run(scenario())


HOLDER = """
import asyncio, sys
from tala_ray.serving.idempotency import IdempotencyStore, SharedIdempotency
from tala_ray.serving.local_graph import LocalStep

async def main():
    shared = SharedIdempotency(LocalStep(IdempotencyStore, {config!r}))
    async def compute():
        print("computing", flush=True)
        await asyncio.sleep(600)
    await shared.run_once("k", "h", compute)

asyncio.run(main())
"""


def test_a_claim_of_a_killed_holder_is_released_within_its_lease(valkey):
    """A holder in another process renews its claim past the lease while alive; SIGKILLed, its claim
    lapses within `lease_s` and a retry decides the key (and every later retry gets that answer)."""
    config = ledger_config(valkey.url, lease_s=1.0, wait_s=10.0)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER.format(config=config))], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "computing"

        async def scenario():
            store = LocalStep(IdempotencyStore, {**config, "wait_s": 2.5})
            assert (await store.claim.remote("k", "h", "retry"))["state"] == "pending", "renewed past its lease"
            os.kill(holder.pid, signal.SIGKILL)
            killed = time.monotonic()
            calls = []

            async def compute():
                calls.append(time.monotonic() - killed)
                return {"decision": "approve"}

            shared = SharedIdempotency(LocalStep(IdempotencyStore, {**config, "wait_s": 10.0}))
            assert await shared.run_once("k", "h", compute) == ({"decision": "approve"}, False)
            assert len(calls) == 1 and calls[0] < 1.5, calls
            assert await shared.run_once("k", "h", compute) == ({"decision": "approve"}, True)

        asyncio.run(scenario())
    finally:
        holder.kill()
        holder.wait()


def test_answered_keys_survive_a_sigkill_of_the_embedded_server(tmp_path, monkeypatch):
    """The embedded server (TALA_STREAM_DIR, no URL) SIGKILLed under a running store: its next call starts
    the server again on its AOF and a retry gets the first answer; so does a new store replica."""
    monkeypatch.delenv("TALA_STREAM_URL", raising=False)
    monkeypatch.setenv("TALA_STREAM_DIR", str(tmp_path / "stream"))
    get_settings.cache_clear()
    calls = []

    async def compute():
        calls.append(1)
        return {"request_id": f"r{len(calls)}"}

    config = {"namespace": f"t{uuid.uuid4().hex[:8]}"}

    async def scenario():
        store = LocalStep(IdempotencyStore, config)
        assert await SharedIdempotency(store).run_once("k", "h", compute) == ({"request_id": "r1"}, False)
        first = running_server(tmp_path / "stream")
        kill_server(first)
        assert await SharedIdempotency(store).run_once("k", "h", compute) == ({"request_id": "r1"}, True)
        restarted = SharedIdempotency(LocalStep(IdempotencyStore, config))
        assert await restarted.run_once("k", "h", compute) == ({"request_id": "r1"}, True)
        assert calls == [1]
        assert running_server(tmp_path / "stream").pid != first.pid

    try:
        asyncio.run(scenario())
    finally:
        server = running_server(tmp_path / "stream")
        if server is not None:
            stop_server(server)
        get_settings.cache_clear()
