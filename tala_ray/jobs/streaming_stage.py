"""The demo's streaming stages: the embedded stream server and online store (before the service is
deployed, which reads it), then the holdout world streamed through the broker while the service
decides by applicant id, with the figures of the report's `streaming` key.

- `consistency_mismatch_rate`: a sample of the holdout's applications decided by id at their times
  during a replay (Ray actor consumers scaled by the supervisor), their logged served features
  recomputed offline (`monitoring.consistency`), judged before any later decision by id (those read
  a store that has since seen the applicants' later records);
- `events_per_s`: the holdout's first `INGEST_RECORDS` records published again, as fast as it goes,
  into a second key prefix: published -> consumed -> in the store, while the service decides by id;
- `freshness_p99_ms`: single events appended -> visible to the next decision's store read;
- `quarantined`: records the consumers refused (with their reasons in the quarantine stream).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

from tala_ray.jobs.console import StageProgress

PREFIX = "demo"
FRESHNESS_PROBES = 50
INGEST_RECORDS = 100_000  # the sustained-ingest measure: enough for a steady rate, a few seconds on 2 cores


def start_stream(run: Any, progress: StageProgress) -> None:
    """The embedded Valkey server of the run (its data under WORKDIR/stream)."""
    from tala_ray.streaming.server import start_server

    run.results["stream_server"] = start_server(run.paths["workdir"] / "stream")
    progress.advance()


def online_store_args(run: Any) -> dict[str, Any]:
    """The service's `online_store` args: the run's server and prefix."""
    return {"url": run.results["stream_server"].url, "prefix": PREFIX}


def _post(url: str, headers: dict[str, str]) -> Any:
    client = httpx.Client(base_url=url, headers=headers, timeout=60)
    return lambda path, body: client.post(path, json=body)


def _supervised(config: Any, stop: threading.Event) -> threading.Thread:
    from tala_ray.streaming.consumer import ConsumerSpec
    from tala_ray.streaming.supervisor import ScalingSpec, Supervisor

    supervisor = Supervisor(config, ConsumerSpec(block_ms=20), ScalingSpec(minimum=1, maximum=2))
    thread = threading.Thread(target=supervisor.run, args=(stop, 1.0), daemon=True)
    thread.start()
    return thread


def _freshness(config: Any, applicant_id: int) -> float:
    from tala_ray.streaming.publisher import append_table
    from tala_ray.streaming.store import OnlineStore
    from tala_ray.streaming.topic import connect

    client = connect(config.url)
    store, waits = OnlineStore(client, config), []
    for i in range(FRESHNESS_PROBES):
        before = len(store.raw([applicant_id])[0][0])
        event = pa.table(
            {
                "event_id": pa.array([2**62 + i], pa.int64()),
                "applicant_id": pa.array([applicant_id], pa.int64()),
                "event_time": pa.array([int(time.time() * 1000) - 60_000], pa.int64()).cast(pa.timestamp("ms", "UTC")),
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
        time.sleep(0.01)
    return float(np.percentile(waits, 99))


def stream_holdout(run: Any, progress: StageProgress) -> None:
    """Replay with decisions by id, consistency, sustained ingest while serving, freshness."""
    from tala_ray.monitoring.consistency import log_consistency
    from tala_ray.streaming.publisher import PublishSpec, Records, ordered_records, publish, read_world_tables
    from tala_ray.streaming.server import stop_server
    from tala_ray.streaming.store import OnlineStore
    from tala_ray.streaming.topic import StreamConfig, connect
    from tala_ray.traffic import replay as world_replay
    from tala_ray.traffic.loadgen import closed_loop
    from tala_ray.traffic.stream_replay import applied_total, by_id_bodies, replay, replay_plan, wait_applied

    options, server = run.options, run.results["stream_server"]
    url, headers = run.results["url"], run.results["headers"]
    world = str(run.paths["holdout_world"])
    config = StreamConfig(url=server.url, prefix=PREFIX)
    client, stop = connect(server.url), threading.Event()
    store = OnlineStore(client, config)
    records = ordered_records(read_world_tables(world))
    applications = world_replay.read_world_tables(world)["applications"]
    sample = applications.sample(min(options.stream_decisions, len(applications)), random_state=options.seed)
    supervisor = _supervised(config, stop)
    try:
        result = replay(client, config, store, records, replay_plan(records, sample), _post(url, headers))
        time.sleep(2 * 2.0 + 0.5)  # the service's log flush interval (twice): the decisions by id are on disk
        consistency = log_consistency(str(run.paths["prediction_log"]), world)  # before any later decision by id
        progress.advance()
        # Sustained ingest into a second prefix while the service decides by id (reading the first).
        bulk = config.model_copy(update={"prefix": f"{PREFIX}-ingest"})
        bulk_stop = threading.Event()
        bulk_supervisor = _supervised(bulk, bulk_stop)
        bodies = by_id_bodies(sample.head(50))
        served: dict[str, Any] = {}
        serving = threading.Thread(
            target=lambda: served.update(
                figures=closed_loop(f"{url}/v1/decisions", bodies, headers, 4, max(5.0, options.traffic_seconds / 2))
            ),
            daemon=True,
        )
        serving.start()
        started = time.perf_counter()
        count = min(INGEST_RECORDS, len(records.kinds))
        publish(
            client,
            bulk,
            Records(records.tables, *(a[:count] for a in (records.kinds, records.rows, records.times))),
            PublishSpec(),
        )
        wait_applied(OnlineStore(client, bulk), count, timeout_s=600)
        ingest_s = time.perf_counter() - started
        serving.join()
        bulk_stop.set()
        bulk_supervisor.join(60)
        progress.advance()
        freshness_p99 = _freshness(config, int(sample["applicant_id"].iloc[0]))
        progress.advance()
        figures = served.get("figures")
        run.results["streaming"] = {
            "events_per_s": round(count / ingest_s, 1),
            "freshness_p99_ms": round(freshness_p99, 1),
            "consistency_mismatch_rate": consistency.mismatch_rate,
            "quarantined": store.counters().get("quarantined", 0),
            "records": len(records.kinds),
            "decisions_by_id": consistency.decisions,
            "replay_seconds": round(result.elapsed_s, 1),
            "applied": applied_total(store),
            "decisions_by_id_per_s_while_ingesting": round(figures.requests_per_s, 1) if figures else None,
            "p99_ms_by_id_while_ingesting": round(figures.percentile_ms(99), 1) if figures else None,
        }
        progress.advance()
    finally:
        stop.set()
        supervisor.join(60)
        if not options.keep_serving:
            stop_server(server)
