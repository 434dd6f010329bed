"""The streaming path on a real embedded Valkey server, in one process (no Ray): partitioner, wire codec,
online store (idempotent, late events, retention), consumer with quarantine, offsets, status, CLI."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import orjson
import pyarrow as pa
import pytest
from streaming_fixtures import store_matches_world, world_tables

from tala_ray.data.world import EVENT_ID_BITS
from tala_ray.features.timeutil import DAY_MS
from tala_ray.streaming.codec import SCHEMAS, decode_records, encode_records
from tala_ray.streaming.consumer import Consumer, ConsumerSpec
from tala_ray.streaming.ingest import entry_ops, table_ops
from tala_ray.streaming.partitioner import applicant_partitions, key_partitions
from tala_ray.streaming.publisher import PublishSpec, ordered_records, publish
from tala_ray.streaming.server import ensure_embedded, running_server, start_server, stop_server
from tala_ray.streaming.status import stream_status
from tala_ray.streaming.store import OnlineStore, StoreUnavailableError, UnknownApplicantError
from tala_ray.streaming.supervisor import ScalingSpec, desired_consumers
from tala_ray.streaming.topic import StreamConfig, connect, offset_before_time, seek

T0 = 1_740_000_000_000
FAST = ConsumerSpec(block_ms=20, claim_idle_ms=50, claim_every_s=0.05)


@pytest.fixture(scope="module")
def tables() -> dict[str, pa.Table]:
    return world_tables(300)


def drain(consumer: Consumer) -> int:
    """Step until a read finds nothing new; the entries handled."""
    total = 0
    while handled := consumer.step():
        total += handled
    return total


def replay(config: StreamConfig, tables: dict[str, pa.Table]) -> Consumer:
    client = connect(config.url)
    publish(client, config, ordered_records(tables), PublishSpec())
    consumer = Consumer(config, FAST)
    drain(consumer)
    return consumer


def event_table(rows: list[dict]) -> pa.Table:
    base = {"applicant_id": 7, "event_type": "mm_in", "amount": 10.0, "app_category": None}
    return pa.Table.from_pylist([base | r for r in rows], schema=SCHEMAS["event"])


def test_partitions_are_kafkas_default_partitioner_on_the_applicant_id():
    # kafka-python's reference values from the Java client, 1,000 partitions
    keys = [b"", b"a", b"ab", b"abc", b"123456789", b"\x00 "]
    assert key_partitions(keys, 1000).tolist() == [681, 524, 434, 107, 566, 742]
    ids = np.arange(20_000)
    partitions = applicant_partitions(ids, 8)
    assert partitions.tolist() == key_partitions([str(i).encode() for i in ids], 8).tolist()
    assert np.bincount(partitions, minlength=8).min() > 20_000 / 8 * 0.9


def test_consumers_follow_the_backlog_within_their_bounds():
    spec = ScalingSpec(minimum=1, maximum=4, backlog_per_consumer=1_000)
    wanted = [desired_consumers(backlog, spec) for backlog in (0, 1, 1_000, 1_001, 3_500, 10**6)]
    assert wanted == [1, 1, 1, 2, 4, 4]
    assert desired_consumers(0, spec.model_copy(update={"minimum": 0})) == 0


def test_wire_records_decode_to_the_rows_they_were_encoded_from(tables):
    for kind, table in tables.items():
        part = table.slice(0, 500)
        decoded = decode_records(encode_records(kind, part))
        assert decoded.malformed == [] and decoded.positions[kind] == list(range(part.num_rows))
        assert decoded.tables[kind].equals(part.cast(SCHEMAS[kind]))
    assert tables["event"].column("amount").null_count > 0  # nulls went through too


def test_undecodable_records_get_a_reason_and_the_others_decode():
    good = {"kind": "event", "event_id": 1, "applicant_id": 2, "event_time": T0, "event_type": "mm_in"}
    payloads = [
        b"not json",
        b"[1, 2]",
        orjson.dumps({"kind": "payment"}),
        orjson.dumps(good | {"colour": "red"}),
        orjson.dumps(good | {"amount": "12"}),
        orjson.dumps(good | {"event_time": 1.5}),
        orjson.dumps(good | {"event_id": True}),
        orjson.dumps(good | {"event_id": 1 << 63}),
        orjson.dumps(good),
        orjson.dumps({"kind": "loan", "loan_id": 3, "applicant_id": 2, "repaid": 1}),
    ]
    decoded = decode_records(payloads)
    assert dict(decoded.malformed) == {
        0: "malformed_record",
        1: "malformed_record",
        2: "unknown_kind",
        3: "unknown_field:colour",
        4: "wrong_type:amount",
        5: "wrong_type:event_time",
        6: "wrong_type:event_id",
        7: "wrong_type:event_id",
        9: "wrong_type:repaid",
    }
    assert decoded.positions["event"] == [8] and decoded.tables["event"].column("amount").to_pylist() == [None]


def test_a_replay_through_a_consumer_leaves_exactly_the_raw_tables_in_the_store(config, tables):
    consumer = replay(config, tables)
    store = OnlineStore(connect(config.url), config)
    store_matches_world(store, tables)
    counts = {kind: table.num_rows for kind, table in tables.items()}
    assert store.counters() == {
        "events": counts["event"],
        "loans": counts["loan"],
        "applicants": counts["applicant"],
        f"consumer:{consumer.name}": sum(counts.values()),
    }


def test_duplicated_records_change_nothing_in_the_store(config, tables):
    """An at-least-once producer sent everything twice: the store holds each record once."""
    client = connect(config.url)
    records = ordered_records(tables)
    publish(client, config, records, PublishSpec())
    publish(client, config, records, PublishSpec())
    drain(Consumer(config, FAST))
    store_matches_world(OnlineStore(client, config), tables)


def test_entries_taken_over_while_their_first_consumer_was_slow_are_applied_once(config, tables):
    client = connect(config.url)
    publish(client, config, ordered_records(tables), PublishSpec())
    slow, fast = Consumer(config, FAST), Consumer(config, FAST)
    read = slow._read()  # read, then stalled past claim_idle_ms before applying
    time.sleep(0.1)
    fast._next_claim = 0.0
    assert fast.step() == len(read)  # took them over
    assert fast.claimed == len(read) and fast.applied == len(read)
    assert slow.store.apply(entry_ops(read), consumer=slow.name) == (0, len(read))  # the late write is skipped
    drain(fast)
    store = OnlineStore(client, config)
    store_matches_world(store, tables)
    assert store.counters()["events"] == tables["event"].num_rows


def test_late_events_land_in_time_order_and_the_window_is_trimmed(config):
    store = OnlineStore(connect(config.url), config)
    applicant = pa.Table.from_pylist(
        [{"applicant_id": 7, "country": "KE", "signup_time": T0 - 400 * DAY_MS}], schema=SCHEMAS["applicant"]
    )
    store.apply(table_ops("applicant", applicant, [None]))
    day = lambda n: T0 + n * DAY_MS  # noqa: E731

    def write(*rows: tuple[int, int]) -> None:
        events = event_table([{"event_id": i, "event_time": day(d)} for i, d in rows])
        store.apply(table_ops("event", events, [None] * events.num_rows))

    def held() -> list[int]:
        return ((store.online_tables([7])["events"]["event_time"] - T0) // DAY_MS).tolist()

    write((1, 0), (2, -10))
    write((3, -5), (4, -179), (5, -181))  # late: in place by event time; 181 days before the newest: gone
    assert held() == [-179, -10, -5, 0]
    write((2, -10))  # again: changes nothing
    assert held() == [-179, -10, -5, 0]
    write((6, 20))  # the newest moves on: the window follows it
    assert held() == [-10, -5, 0, 20]


def test_a_malformed_event_is_quarantined_with_its_reason_and_the_consumer_goes_on(config, tables):
    client = connect(config.url)
    small = {kind: table.slice(0, 50) for kind, table in tables.items()}
    small["event"] = tables["event"].filter(pa.compute.is_in(tables["event"]["applicant_id"], pa.array(range(50))))
    publish(client, config, ordered_records(small), PublishSpec())
    good = orjson.loads(encode_records("event", small["event"].slice(0, 1))[0])
    bad = {
        b"{oops": "malformed_record",
        orjson.dumps(good | {"event_id": 99, "amount": -5.0}): "negative_amount",
        orjson.dumps(good | {"event_id": 98, "event_type": "lottery"}): "unknown_event_type",
        orjson.dumps(good | {"event_id": 97, "event_time": "yesterday"}): "wrong_type:event_time",
        orjson.dumps(good | {"event_id": None}): "missing_id",
    }
    for payload in bad:
        client.xadd(config.partition_key(0), {"v": payload})
    late = {kind: table.slice(50, 50) for kind, table in tables.items() if kind != "event"}
    late["event"] = tables["event"].filter(pa.compute.is_in(tables["event"]["applicant_id"], pa.array(range(50, 100))))
    publish(client, config, ordered_records(late), PublishSpec())  # records after the bad ones
    consumer = Consumer(config, FAST)
    drain(consumer)
    quarantined = client.xrange(config.quarantine_key)
    assert {fields[b"record"]: fields[b"reason"].decode() for _, fields in quarantined} == bad
    assert all(fields[b"source"].startswith(config.partition_key(0).encode()) for _, fields in quarantined)
    store = OnlineStore(client, config)
    assert store.counters()["quarantined"] == len(bad)
    both = {kind: pa.concat_tables([small[kind], late[kind]]) for kind in tables}
    store_matches_world(store, both)  # everything good before and after the bad records is in
    status = stream_status(client, config, interval_s=0.05)
    assert status.quarantined == len(bad) and status.backlog == 0
    assert status.quarantine_reasons == {reason: 1 for reason in bad.values()}
    assert [c.name for c in status.consumers] == [consumer.name]


def test_unknown_applicants_are_named_and_a_dead_server_is_unavailable(config, tables):
    replay(config, {kind: table.slice(0, 0) for kind, table in tables.items()} | {"applicant": tables["applicant"]})
    store = OnlineStore(connect(config.url), config)
    tables_of = store.online_tables([3, 5])
    assert len(tables_of["events"]["applicant_id"]) == 0 and tables_of["applicants"]["applicant_id"].tolist() == [0, 1]
    with pytest.raises(UnknownApplicantError, match="unknown applicant_id: 999999") as error:
        store.online_tables([3, 999_999])
    assert error.value.applicant_ids == [999_999]
    dead = OnlineStore(connect("redis://127.0.0.1:1/0", retries=0), config)
    with pytest.raises(StoreUnavailableError):
        dead.online_tables([3])


def test_the_offset_for_a_time_splits_the_partition_and_seek_replays(config, tables):
    client = connect(config.url)
    records = ordered_records(tables)
    publish(client, config, records, PublishSpec())
    cut = int(np.quantile(records.times, 0.3))
    for partition in range(config.partitions):
        key = config.partition_key(partition)
        entries = client.xrange(key)
        times = [orjson.loads(fields[b"v"])[_time_field(fields)] for _, fields in entries]
        offset = offset_before_time(client, key, cut).encode()
        position = [entry_id for entry_id, _ in entries].index(offset)
        assert times[position] < cut <= times[position + 1]
    consumer = Consumer(config, FAST)
    assert drain(consumer) == len(records.kinds)
    seek(client, config, dict.fromkeys(range(config.partitions), "0-0"))
    assert drain(consumer) == len(records.kinds)  # replayed from the start
    store_matches_world(OnlineStore(client, config), tables)


def _time_field(fields: dict) -> str:
    kind = orjson.loads(fields[b"v"])["kind"]
    return {"event": "event_time", "loan": "disbursed_time", "applicant": "signup_time"}[kind]


def test_the_rate_paces_the_publisher(config, tables):
    records = ordered_records({kind: table.slice(0, 1_000) for kind, table in tables.items()})
    report = publish(connect(config.url), config, records, PublishSpec(rate=10_000))
    assert report.elapsed_s >= (len(records.kinds) - 100) / 10_000


def test_event_ids_identify_events_across_the_world(tables):
    events = tables["event"]
    ids = events.column("event_id").to_numpy()
    assert len(np.unique(ids)) == len(ids)
    assert (ids >> EVENT_ID_BITS).tolist() == events.column("applicant_id").to_pylist()


def test_the_embedded_server_is_reused_persists_and_stops_by_pid(tmp_path):
    first = ensure_embedded(tmp_path / "s")
    assert ensure_embedded(tmp_path / "s") == first
    connect(first.url).set("kept", b"1")
    stop_server(first)
    assert running_server(tmp_path / "s") is None
    again = start_server(tmp_path / "s")
    try:
        assert again.pid != first.pid and connect(again.url).get("kept") == b"1"  # from the AOF
    finally:
        stop_server(again)


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tala_ray.cli", "stream", *args], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("publish", "--world", "/nonexistent/w"), "error: world '/nonexistent/w': table 'events' is missing"),
        (("publish", "--rate", "0"), "error: rate: Input should be greater than 0"),
        (("publish", "--since", "yesterday"), "error: --since: not an ISO-8601 time: 'yesterday'"),
        (
            ("status", "--url", "redis://127.0.0.1:1/0"),
            "error: the stream server at redis://127.0.0.1:1/0 is unavailable",
        ),
    ],
)
def test_bad_cli_input_is_one_line_and_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr


def test_publish_and_status_from_the_cli(valkey, tmp_path, small_world_dir):
    url = valkey.url.replace("/0", "/1")  # a database of its own
    published = run_cli("publish", "--world", str(small_world_dir), "--url", url)
    assert published.returncode == 0, published.stderr
    assert "published applicant=120" in published.stdout
    status = run_cli("status", "--url", url, "--interval", "0.1")
    assert status.returncode == 0, status.stderr
    assert "quarantined: 0" in status.stdout and "backlog" in status.stdout


@pytest.fixture(scope="module")
def small_world_dir(tmp_path_factory):
    """A 120-applicant world's raw tables as Parquet."""
    import pyarrow.parquet as pq

    from tala_ray.data.world import simulate_chunk

    root = tmp_path_factory.mktemp("world")
    for name, table in simulate_chunk(9, 0, 0, 120).items():
        (root / name).mkdir()
        pq.write_table(table, root / name / "part-0.parquet")
    return root
