"""A world replayed through the stream while the service decides its applications by applicant id.

The records go to the topic in event-time order; each application is decided once the stream has
reached its time, by id, so its features come from the online store as they would have been then.
Applications are decided in groups (`replay_plan`): a group waits for every record before its last
application's time, and a group only holds applications with no record of their own applicant between
their time and that horizon, so what each decision reads is exactly the records before its time
(the store keeps an applicant's 180 days before its newest record: a later record could trim one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import redis

from tala_ray.core.errors import UserError
from tala_ray.streaming.publisher import PublishSpec, Records, publish
from tala_ray.streaming.store import OnlineStore
from tala_ray.streaming.topic import StreamConfig

Post = Callable[[str, dict[str, Any]], Any]  # (path, JSON body) -> a response with .status_code, .json()


@dataclass(frozen=True)
class ReplayStep:
    """Publish the records up to `end` (exclusive, in publishing order), then decide `applications`."""

    end: int
    applications: pd.DataFrame


def _ms(values: Any) -> np.ndarray:
    return pd.to_datetime(pd.Series(values), utc=True).astype("datetime64[ms, UTC]").astype("int64").to_numpy()


def replay_plan(records: Records, applications: pd.DataFrame, max_group: int = 100) -> list[ReplayStep]:
    """The replay's steps: groups of applications in time order, each after the records before its horizon."""
    apps = applications.assign(_t=_ms(applications["application_time"]).astype(float)).sort_values("_t", kind="stable")
    ids = np.empty(len(records.kinds), dtype=np.int64)
    for kind in np.unique(records.kinds):
        where = np.flatnonzero(records.kinds == kind)
        column = records.tables[kind].column("applicant_id").fill_null(-1).to_numpy(zero_copy_only=False)
        ids[where] = column[records.rows[where]]
    found = pd.DataFrame({"applicant_id": ids, "_next": records.times}).sort_values("_next", kind="stable")
    nxt = pd.merge_asof(
        apps.reset_index(), found, left_on="_t", right_on="_next", by="applicant_id", direction="forward"
    ).set_index("index")
    apps = apps.assign(_next=nxt["_next"].reindex(apps.index).fillna(np.inf).to_numpy())
    times, nexts = apps["_t"].to_numpy(), apps["_next"].to_numpy()
    steps, start = [], 0
    while start < len(apps):
        stop, bound = start + 1, nexts[start]  # bound: the earliest own record after a member's time
        while stop < len(apps) and stop - start < max_group and times[stop] <= bound:
            bound = min(bound, nexts[stop])
            stop += 1
        end = int(np.searchsorted(records.times, times[stop - 1], side="left"))
        steps.append(ReplayStep(end, apps.iloc[start:stop].drop(columns=["_t", "_next"])))
        start = stop
    return steps


def applied_total(store: OnlineStore) -> int:
    """Records the consumers have applied or quarantined."""
    return sum(n for name, n in store.counters().items() if not name.startswith("consumer:"))


def wait_applied(store: OnlineStore, target: int, timeout_s: float = 120.0) -> None:
    """Wait until the store has applied `target` records."""
    deadline = time.monotonic() + timeout_s
    while applied_total(store) < target:
        if time.monotonic() > deadline:
            raise UserError(f"the consumers applied {applied_total(store)} of {target} records in {timeout_s:.0f} s")
        time.sleep(0.002)


def by_id_bodies(applications: pd.DataFrame) -> list[dict[str, Any]]:
    """`{"applicant_id", "application"}` bodies of some applications."""
    times = pd.to_datetime(applications["application_time"], utc=True)
    return [
        {
            "applicant_id": int(a),
            "application": {"amount": float(m), "term_days": int(d), "application_time": t.isoformat()},
        }
        for a, m, d, t in zip(
            applications["applicant_id"], applications["amount"], applications["term_days"], times, strict=True
        )
    ]


def _part(records: Records, start: int, stop: int) -> Records:
    return Records(records.tables, records.kinds[start:stop], records.rows[start:stop], records.times[start:stop])


@dataclass
class ReplayResult:
    records: int
    decisions: int
    elapsed_s: float
    decide_s: float


def replay(
    client: redis.Redis,
    config: StreamConfig,
    store: OnlineStore,
    records: Records,
    steps: list[ReplayStep],
    post: Post,
    base_applied: int = 0,
) -> ReplayResult:
    """Publish each step's records, wait for the consumers, decide its applications by id (batch endpoint)."""
    started, decide_s, published, decided = time.perf_counter(), 0.0, 0, 0
    for step in steps:
        if step.end > published:
            publish(client, config, _part(records, published, step.end), PublishSpec())
            published = step.end
        wait_applied(store, base_applied + published)
        began = time.perf_counter()
        response = post("/v1/decisions/batch", {"applications": by_id_bodies(step.applications)})
        if response.status_code != 200:
            raise UserError(f"a decision by id was answered {response.status_code}: {response.text[:300]}")
        decide_s += time.perf_counter() - began
        decided += len(step.applications)
    if published < len(records.kinds):
        publish(client, config, _part(records, published, len(records.kinds)), PublishSpec())
    wait_applied(store, base_applied + len(records.kinds))
    return ReplayResult(len(records.kinds), decided, time.perf_counter() - started, decide_s)
