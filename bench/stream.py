"""Streaming figures, every ratio measured in one run (the machine is shared: the load average is
printed, each figure repeated and given as a range):

- ingest: a world's records published -> consumed -> in the store, sustained, while decisions by id
  are served (consumer processes, one Consumer each);
- freshness: an event appended (`POST /v1/events`'s path) -> visible to the next decision (p50/p99);
- decision by id vs the raw-body endpoint, single, same server (the in-process baseline under
  uvicorn): closed-loop throughput, then p99 paced at half the by-id throughput;
- consistency after a replay (decisions by id at their times; the served features recomputed offline);
- store memory per applicant (`INFO memory`, `MEMORY USAGE`).

Usage: .venv/bin/python -m bench.stream --world W --registry R [--repeats 3] [--seconds 6] [--out F]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from fastapi.testclient import TestClient

from bench._targets import uvicorn_target
from tala_ray.core.registry import Registry
from tala_ray.monitoring.consistency import consistency, read_raw_tables
from tala_ray.monitoring.prediction_log import read_prediction_log
from tala_ray.serving.inprocess import create_app
from tala_ray.serving.online_store import OnlineStoreConfig
from tala_ray.streaming.consumer import Consumer, ConsumerSpec
from tala_ray.streaming.publisher import PublishSpec, append_table, ordered_records, publish, read_world_tables
from tala_ray.streaming.server import start_server, stop_server
from tala_ray.streaming.store import OnlineStore
from tala_ray.streaming.topic import StreamConfig, connect, ensure_group
from tala_ray.traffic import replay as world_replay
from tala_ray.traffic.loadgen import closed_loop, paced
from tala_ray.traffic.stream_replay import applied_total, replay, replay_plan

CONCURRENCY = 8


def _consume(config: StreamConfig, stop: Any) -> None:
    """One consumer process (a Ray actor does the same in `tala-ray stream consume`)."""
    flag = threading.Event()
    threading.Thread(target=lambda: (stop.wait(), flag.set()), daemon=True).start()
    Consumer(config, ConsumerSpec(batch=1_000, block_ms=20)).run(flag)


def _range(values: list[float], digits: int = 1) -> dict[str, float]:
    return {
        name: round(float(f(values)), digits) for name, f in (("min", np.min), ("median", np.median), ("max", np.max))
    }


def _load(url: str, body: bytes, seconds: float) -> tuple[float, float]:
    figures = closed_loop(url, [body], {"Content-Type": "application/json"}, CONCURRENCY, seconds)
    return (figures.requests - figures.failed) / figures.seconds, figures.percentile_ms(99)


def ingest(config: StreamConfig, world: str, consumers: int, serve_url: str, body: bytes) -> dict[str, float]:
    """Publish the whole world as fast as possible into a fresh prefix while decisions by id are served."""
    client = connect(config.url)
    ensure_group(client, config)
    store = OnlineStore(client, config)
    records = ordered_records(read_world_tables(world))
    stop = multiprocessing.Event()
    workers = [multiprocessing.Process(target=_consume, args=(config, stop)) for _ in range(consumers)]
    for worker in workers:
        worker.start()
    done = threading.Event()
    decided: list[float] = []

    def serve_meanwhile() -> None:
        while not done.is_set():
            decided.append(_load(serve_url, body, 2.0)[0])

    serving = threading.Thread(target=serve_meanwhile, daemon=True)
    serving.start()
    started = time.perf_counter()
    report = publish(client, config, records, PublishSpec())
    while applied_total(store) < len(records.kinds):
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    done.set()
    serving.join(30)
    stop.set()
    for worker in workers:
        worker.join(30)
    return {
        "records": len(records.kinds),
        "published_per_s": report.records_per_s,
        "in_store_per_s": round(len(records.kinds) / elapsed, 1),
        "decisions_per_s_meanwhile": round(float(np.mean(decided)) if decided else 0.0, 1),
    }


def freshness(config: StreamConfig, applicant_id: int, probes: int) -> dict[str, float]:
    """Each probe appends one event and polls the store (what the next decision reads) until it is there."""
    client = connect(config.url)
    store = OnlineStore(client, config)
    stop = multiprocessing.Event()
    worker = multiprocessing.Process(target=_consume, args=(config, stop))
    worker.start()
    waits = []
    try:
        for i in range(probes):
            before = len(store.raw([applicant_id])[0][0])
            event = pa.table(
                {
                    "event_id": pa.array([10**15 + i + uuid.uuid4().int % 10**9], pa.int64()),
                    "applicant_id": pa.array([applicant_id], pa.int64()),
                    "event_time": pa.array([int(time.time() * 1000) - 60_000], pa.int64()).cast(
                        pa.timestamp("ms", "UTC")
                    ),
                    "event_type": pa.array(["airtime"]),
                    "amount": pa.array([1.0 + i]),
                    "app_category": pa.array([None], pa.string()),
                }
            )
            started = time.perf_counter()
            append_table(client, config, "event", event)
            while len(store.raw([applicant_id])[0][0]) == before:
                time.sleep(0.0005)
            waits.append((time.perf_counter() - started) * 1000)
            time.sleep(0.02)
    finally:
        stop.set()
        worker.join(30)
    return {"p50_ms": round(float(np.percentile(waits, 50)), 1), "p99_ms": round(float(np.percentile(waits, 99)), 1)}


def memory(config: StreamConfig, applicants: int, prefixes: int, used_before: int) -> dict[str, float]:
    """The store's keys per applicant (`MEMORY USAGE` of a sample), and the server's whole `used_memory`
    per applicant and prefix (the topic's entries included: a broker keeps them until trimmed)."""
    client = connect(config.url)
    used = int(client.info("memory")["used_memory"]) - used_before
    sample = client.scan(0, match=f"{config.prefix}:ev:*", count=2_000)[1][:200]
    events = [client.memory_usage(k) or 0 for k in sample]
    record = [client.memory_usage(k.replace(b":ev:", b":ap:")) or 0 for k in sample]
    return {
        "store_bytes_per_applicant": round(float(np.mean(events) + np.mean(record))),
        "events_key_bytes": round(float(np.mean(events))),
        "record_hash_bytes": round(float(np.mean(record))),
        "events_per_applicant": round(float(np.mean([client.zcard(k) for k in sample])), 1),
        "server_used_memory_per_applicant_bytes": round(used / (applicants * prefixes)),
    }


def replay_consistency(config: StreamConfig, world: str, registry: str, fsv: str | None, n: int) -> dict:
    """Decisions by id at their times during a replay, then the served features recomputed offline."""
    client = connect(config.url)
    ensure_group(client, config)
    store = OnlineStore(client, config)
    records = ordered_records(read_world_tables(world))
    applications = world_replay.read_world_tables(world)["applications"].sample(n, random_state=1)
    log_uri = tempfile.mkdtemp(prefix="stream-log-")
    app = TestClient(
        create_app(
            registry=registry,
            expected_feature_set_version=fsv,
            online_store=OnlineStoreConfig(url=config.url, prefix=config.prefix),
            prediction_log_uri=log_uri,
        )
    )
    stop = multiprocessing.Event()
    worker = multiprocessing.Process(target=_consume, args=(config, stop))
    worker.start()
    try:
        result = replay(
            client, config, store, records, replay_plan(records, applications), lambda p, j: app.post(p, json=j)
        )
    finally:
        stop.set()
        worker.join(30)
    app.app.state.prediction_log.flush()
    report = consistency(read_prediction_log(log_uri), read_raw_tables(world))
    return {
        "decisions": result.decisions,
        "replay_s": round(result.elapsed_s, 1),
        "mismatch_rate": report.mismatch_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--replay-decisions", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    registry = Registry(args.registry)
    fsv = registry.manifest("credit_pd", registry.resolve("credit_pd", "champion")).feature_set_version
    figures: dict[str, Any] = {"load_average_start": os.getloadavg()}
    print(f"load average {figures['load_average_start']} on {os.cpu_count()} cores")
    info = start_server(tempfile.mkdtemp(prefix="bench-valkey-"))
    try:
        base = StreamConfig(url=info.url, prefix="tala", partitions=4)
        used_before = int(connect(info.url).info("memory")["used_memory"])
        world = world_replay.read_world_tables(args.world)
        counts = world["events"].groupby("applicant_id").size()
        typical = counts.index[np.argsort(counts.to_numpy())[len(counts) // 2]]  # the median number of events
        row = world["applications"].set_index("applicant_id").loc[[typical]].reset_index().iloc[0]
        raw = world_replay.request_payload(world, row, include_future=True)  # what the store holds, as a body
        by_id = orjson.dumps({"applicant_id": int(row["applicant_id"]), "application": raw["application"]})
        os.environ.update({"TALA_INPROCESS_REGISTRY": args.registry, "TALA_STREAM_URL": info.url})
        if fsv:
            os.environ["TALA_INPROCESS_EXPECTED_FEATURE_SET_VERSION"] = fsv
        with uvicorn_target("tala_ray.serving.inprocess:create_app", "/v1/decisions") as target:
            runs = [ingest(base.model_copy(update={"prefix": f"tala{i}" if i else "tala"}), args.world,
                           args.consumers, target.url, by_id) for i in range(args.repeats)]  # fmt: skip
            figures["ingest"] = {key: _range([r[key] for r in runs]) for key in runs[0]}
            figures["store_memory"] = memory(base, len(world["applicants"]), args.repeats, used_before)
            figures["freshness"] = [freshness(base, int(row["applicant_id"]), 100) for _ in range(args.repeats)]
            ratios, raw_rps, id_rps = [], [], []
            raw_body = orjson.dumps(raw)
            for _ in range(args.repeats):
                r, _p = _load(target.url, raw_body, args.seconds)
                i, _p = _load(target.url, by_id, args.seconds)
                raw_rps.append(r)
                id_rps.append(i)
                ratios.append(i / r if r else 0.0)
            half = float(np.median(id_rps)) / 2
            p99 = {}
            for name, body in (("by_id", by_id), ("raw", raw_body)):
                run = paced(target.url, [body], {"Content-Type": "application/json"}, half, args.seconds)
                p99[name] = round(run.percentile_ms(99), 1)
            figures["decisions"] = {
                "raw_body_bytes": len(raw_body),
                "raw_body_events": len(raw["events"]),
                "raw_rps": _range(raw_rps),
                "by_id_rps": _range(id_rps),
                "by_id_over_raw": _range(ratios, 2),
                "paced_rate": round(half, 1),
                "p99_ms_at_half_load": p99,
            }
        figures["consistency"] = replay_consistency(
            base.model_copy(update={"prefix": "replay"}), args.world, args.registry, fsv, args.replay_decisions
        )
    finally:
        stop_server(info)
    figures["load_average_end"] = os.getloadavg()
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
