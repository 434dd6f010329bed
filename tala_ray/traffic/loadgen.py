"""A small HTTP load generator (asyncio + httpx) for the demo's traffic: closed loop, or paced (open loop)."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

import httpx
import numpy as np


@dataclass
class LoadFigures:
    """What a load run measured."""

    requests: int = 0
    failed: int = 0
    items_per_request: int = 1
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    status_counts: dict[int, int] = field(default_factory=dict)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def items_per_s(self) -> float:
        return self.requests_per_s * self.items_per_request

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def _record(figures: LoadFigures, status: int, latency_ms: float) -> None:
    figures.latencies_ms.append(latency_ms)
    figures.requests += 1
    figures.failed += status != 200
    figures.status_counts[status] = figures.status_counts.get(status, 0) + 1


async def _post(client: httpx.AsyncClient, url: str, body: dict, headers: dict[str, str]) -> int:
    try:
        return (await client.post(url, json=body, headers=headers)).status_code
    except httpx.HTTPError:
        return 0


async def _closed_loop(
    url: str, bodies: list[dict], headers: dict[str, str], concurrency: int, seconds: float, items: int
) -> LoadFigures:
    figures = LoadFigures(items_per_request=items)
    cycle = itertools.cycle(bodies)
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status = await _post(client, url, next(cycle), headers)
            _record(figures, status, (time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    figures.seconds = time.perf_counter() - started
    return figures


def closed_loop(
    url: str, bodies: list[dict], headers: dict[str, str], concurrency: int, seconds: float, items_per_request: int = 1
) -> LoadFigures:
    """`concurrency` clients each send the next body as soon as the last answer came, for `seconds`."""
    return asyncio.run(_closed_loop(url, bodies, headers, concurrency, seconds, items_per_request))


async def _paced(url: str, bodies: list[dict], headers: dict[str, str], rate: float, seconds: float) -> LoadFigures:
    figures = LoadFigures()
    cycle = itertools.cycle(bodies)
    started = time.perf_counter()

    async def one(client: httpx.AsyncClient, scheduled: float) -> None:
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        status = await _post(client, url, next(cycle), headers)
        _record(
            figures, status, (time.perf_counter() - scheduled) * 1000
        )  # from the scheduled time: no coordinated omission

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
        await asyncio.gather(*(one(client, started + i / rate) for i in range(int(rate * seconds))))
    figures.seconds = time.perf_counter() - started
    return figures


def paced(url: str, bodies: list[dict], headers: dict[str, str], rate: float, seconds: float) -> LoadFigures:
    """Requests sent at a fixed `rate` per second for `seconds` whatever the answers (open loop);
    latency counts from each request's scheduled send time."""
    return asyncio.run(_paced(url, bodies, headers, rate, seconds))
