"""A small HTTP load generator (asyncio + httpx): closed loop, or paced (open loop), with latency percentiles.

A body is a dict (sent as JSON) or bytes / text sent as they are (name their Content-Type in the headers).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

Body = dict[str, Any] | bytes | str


@dataclass
class LoadFigures:
    """What a load run measured."""

    requests: int = 0
    failed: int = 0
    items_per_request: int = 1
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    status_counts: dict[int, int] = field(default_factory=dict)
    latencies_by_status: dict[int, list[float]] = field(default_factory=dict)
    retry_after: int = 0  # answers carrying a Retry-After header

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def items_per_s(self) -> float:
        return self.requests_per_s * self.items_per_request

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def _record(figures: LoadFigures, answer: tuple[int, bool], latency_ms: float) -> None:
    status, retry_after = answer
    figures.latencies_ms.append(latency_ms)
    figures.requests += 1
    figures.failed += status != 200
    figures.status_counts[status] = figures.status_counts.get(status, 0) + 1
    figures.latencies_by_status.setdefault(status, []).append(latency_ms)
    figures.retry_after += retry_after


async def _post(client: httpx.AsyncClient, url: str, body: Body, headers: dict[str, str]) -> tuple[int, bool]:
    """The answer's status (0 when the request failed on the way: connection, timeout) and whether it
    carried a Retry-After header."""
    try:
        if isinstance(body, dict):
            response = await client.post(url, json=body, headers=headers)
        else:
            response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError:
        return 0, False
    return response.status_code, "retry-after" in response.headers


async def _closed_loop(
    url: str,
    bodies: list[Body],
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
    items: int,
    timeout_s: float,
) -> LoadFigures:
    figures = LoadFigures(items_per_request=items)
    cycle = itertools.cycle(bodies)
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            answer = await _post(client, url, next(cycle), headers)
            _record(figures, answer, (time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    figures.seconds = time.perf_counter() - started
    return figures


def closed_loop(
    url: str,
    bodies: list[Body],
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
    items_per_request: int = 1,
    timeout_s: float = 30.0,
) -> LoadFigures:
    """`concurrency` clients each send the next body as soon as the last answer came, for `seconds`."""
    return asyncio.run(_closed_loop(url, bodies, headers, concurrency, seconds, items_per_request, timeout_s))


async def _paced(
    url: str,
    bodies: list[Body],
    headers: dict[str, str],
    rate: float,
    seconds: float,
    timeout_s: float,
    connections: int,
) -> LoadFigures:
    figures = LoadFigures()
    cycle = itertools.cycle(bodies)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async def one(client: httpx.AsyncClient, scheduled: float) -> None:
        answer = await _post(client, url, next(cycle), headers)
        # from the scheduled time, not the send time: no coordinated omission
        _record(figures, answer, (time.perf_counter() - scheduled) * 1000)

    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        started = time.perf_counter()
        sent = []
        for index in range(int(rate * seconds)):  # each request started at its time, none created ahead
            scheduled = started + index / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            sent.append(asyncio.create_task(one(client, scheduled)))
        await asyncio.gather(*sent)
        figures.seconds = time.perf_counter() - started
    return figures


def paced(
    url: str,
    bodies: list[Body],
    headers: dict[str, str],
    rate: float,
    seconds: float,
    timeout_s: float = 30.0,
    connections: int = 64,
) -> LoadFigures:
    """Requests sent at a fixed `rate` per second for `seconds` whatever the answers (open loop), over at most
    `connections` connections; latency counts from each request's scheduled send time."""
    return asyncio.run(_paced(url, bodies, headers, rate, seconds, timeout_s, connections))
