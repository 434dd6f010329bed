"""A small closed-loop HTTP load generator (asyncio + httpx) for the demo's traffic."""

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
            try:
                response = await client.post(url, json=next(cycle), headers=headers)
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            figures.latencies_ms.append((time.perf_counter() - started) * 1000)
            figures.requests += 1
            figures.failed += status != 200
            figures.status_counts[status] = figures.status_counts.get(status, 0) + 1

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
