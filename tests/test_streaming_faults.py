"""Faults of the streaming path, caused for real: a consumer actor SIGKILLed mid-stream, the broker SIGKILLed
and restarted on its data directory; and the bootstrap from the offline tables with Ray Data. After each,
the online store holds exactly what the raw tables give: no record lost, none applied twice."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray
from streaming_fixtures import store_matches_world, wait_until, world_tables

from tala_ray.data.world import simulate_chunk
from tala_ray.streaming.bootstrap import bootstrap
from tala_ray.streaming.consumer import Consumer, ConsumerSpec, consumer_actor
from tala_ray.streaming.publisher import PublishReport, PublishSpec, Records, ordered_records, publish
from tala_ray.streaming.server import kill_server, start_server, stop_server
from tala_ray.streaming.store import OnlineStore
from tala_ray.streaming.supervisor import ScalingSpec, Supervisor, group_backlog
from tala_ray.streaming.topic import StreamConfig, connect, ensure_group

pytestmark = pytest.mark.ray

SPEC = ConsumerSpec(batch=500, block_ms=100, claim_idle_ms=1_000, claim_every_s=0.5)


def exact_counts(tables) -> dict[str, int]:
    return {
        "events": tables["event"].num_rows,
        "loans": tables["loan"].num_rows,
        "applicants": tables["applicant"].num_rows,
    }


def kinds_applied(store: OnlineStore) -> dict[str, int]:
    return {k: v for k, v in store.counters().items() if k in ("events", "loans", "applicants")}


def publish_in_background(config: StreamConfig, records, rate: float) -> tuple[threading.Thread, list[PublishReport]]:
    reports: list[PublishReport] = []
    thread = threading.Thread(
        target=lambda: reports.append(publish(connect(config.url), config, records, PublishSpec(rate=rate)))
    )
    thread.start()
    return thread, reports


def _part(records: Records, start: int, stop: int | None) -> Records:
    return Records(records.tables, records.kinds[start:stop], records.rows[start:stop], records.times[start:stop])


def pending_of(client, config: StreamConfig) -> dict[str, int]:
    held: dict[str, int] = {}
    for key in config.partition_keys():
        for consumer in client.xpending(key, config.group)["consumers"]:
            held[consumer["name"].decode()] = held.get(consumer["name"].decode(), 0) + consumer["pending"]
    return held


def test_a_consumer_killed_mid_stream_is_replaced_and_its_entries_are_taken_over(ray_cluster, config):
    tables = world_tables(400, seed=6)
    client = connect(config.url)
    ensure_group(client, config)
    scaling = ScalingSpec(minimum=1, maximum=3, backlog_per_consumer=3_000, num_cpus=0.1)
    supervisor = Supervisor(config, SPEC, scaling)
    records = ordered_records(tables)
    half = len(records.kinds) // 2
    publish(client, config, _part(records, 0, half), PublishSpec())  # a backlog of ~17,000 records
    assert supervisor.tick() == 3  # scaled up with the backlog
    publisher, _ = publish_in_background(config, _part(records, half, None), rate=5_000)  # then ~3.4 s live
    try:
        held, victims, deadline = 0, [], time.monotonic() + 60
        while not held and time.monotonic() < deadline:  # SIGKILL a consumer holding entries it has not applied
            members = {m.name: m for m in supervisor.members}
            holding = [name for name, n in pending_of(client, config).items() if n > 0 and name in members]
            if holding:
                victim = members[holding[0]]
                os.kill(ray.get(victim.actor.pid.remote()), signal.SIGKILL)
                victims.append(victim.name)
                ray.wait([victim.run], timeout=30)  # dead: what it holds is final
                held = pending_of(client, config).get(victim.name, 0)
                supervisor.tick()
            time.sleep(0.01)
        assert held > 0, "no consumer was killed while holding entries"
        publisher.join()

        def drained() -> bool:
            supervisor.tick()  # replaces the dead consumer, forgets it once its entries are taken over
            return group_backlog(client, config) == 0 and not supervisor.departed

        wait_until(drained, timeout_s=120, every_s=0.5)
        stats = ray.get([m.actor.stats.remote() for m in supervisor.members])
        assert sum(s["claimed"] for s in stats) >= held
        members = {c["name"].decode() for c in client.xinfo_consumers(config.partition_key(0), config.group)}
        assert not members & set(victims)  # gone from the group after the takeover
        store = OnlineStore(client, config)
        assert kinds_applied(store) == exact_counts(tables)  # each record applied once, even the claimed ones
        store_matches_world(store, tables)
        assert supervisor.tick() == scaling.minimum  # no backlog left: scaled down
    finally:
        publisher.join()
        supervisor.shutdown()


def test_the_broker_killed_and_restarted_on_its_data_loses_and_doubles_nothing(ray_cluster, tmp_path):
    info = start_server(tmp_path / "valkey")
    config = StreamConfig(url=info.url, prefix="restart", partitions=3)
    tables = world_tables(400, seed=8)
    total = sum(t.num_rows for t in tables.values())
    client = connect(config.url)
    ensure_group(client, config)
    actors = [consumer_actor(0.1).remote(config, SPEC) for _ in range(2)]
    ray.get([actor.name.remote() for actor in actors])  # both up before the stream starts
    runs = [actor.run.remote() for actor in actors]
    publisher, reports = publish_in_background(config, ordered_records(tables), rate=5_000)  # ~7 s
    try:
        store = OnlineStore(client, config)
        wait_until(lambda: sum(kinds_applied(store).values()) > total // 6, timeout_s=60)
        kill_server(info)  # SIGKILL mid-stream: published and applied only in part
        assert publisher.is_alive()
        threading.Event().wait(1.0)
        info = start_server(tmp_path / "valkey", port=info.port)  # the same data directory: the AOF is replayed
        publisher.join(timeout=120)
        assert reports and reports[0].retries >= 1  # the publisher saw the outage and resent
        wait_until(lambda: group_backlog(client, config) == 0 and sum(kinds_applied(store).values()) >= total, 120)
        store_matches_world(store, tables)
        assert sum(client.xlen(k) for k in config.partition_keys()) >= total
    finally:
        publisher.join()
        for actor in actors:
            actor.stop.remote()
        ray.wait(runs, num_returns=len(runs), timeout=30)
        stop_server(info)


def test_bootstrap_from_the_offline_tables_then_the_stream_leaves_no_gap_and_no_double(ray_cluster, config, tmp_path):
    world = tmp_path / "world"
    for name, table in simulate_chunk(12, 0, 0, 300).items():
        (world / name).mkdir(parents=True)
        pq.write_table(table, world / name / "part-0.parquet")
    tables = world_tables(300, seed=12)
    client = connect(config.url)
    records = ordered_records(tables)
    publish(client, config, records, PublishSpec())  # the stream holds the whole history
    cut = int(np.median(records.times))
    report = bootstrap(str(world), config, cut)
    before = {kind: int(((records.kinds == kind) & (records.times < cut)).sum()) for kind in tables}
    assert report.loaded == before and report.quarantined == 0
    consumer = Consumer(config, SPEC)
    applied = 0
    while handled := consumer.step():
        applied += handled
    assert consumer.applied == applied == int((records.times >= cut).sum())  # only the records from the cut on
    store = OnlineStore(client, config)
    assert kinds_applied(store) == exact_counts(tables)  # snapshot + stream: each record exactly once
    store_matches_world(store, tables)
