"""Decisions by applicant id and POST /v1/events on the in-process app (the same steps and body readers
as the Serve application) against a real embedded Valkey server, and online/offline consistency after a
replay through the real broker and a real consumer."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from tala_ray.core.registry import ArtifactMetadata, Registry
from tala_ray.data import validation
from tala_ray.data.world import simulate_chunk
from tala_ray.features.definitions import compute_features, feature_set_version
from tala_ray.models.credit import LogisticCreditModel
from tala_ray.models.uplift import TLearnerUplift
from tala_ray.monitoring.consistency import consistency, read_raw_tables
from tala_ray.monitoring.prediction_log import read_prediction_log
from tala_ray.serving.inprocess import create_app
from tala_ray.serving.online_store import OnlineStoreConfig
from tala_ray.streaming.codec import TIME_COLUMN
from tala_ray.streaming.consumer import Consumer, ConsumerSpec
from tala_ray.streaming.ingest import table_ops
from tala_ray.streaming.publisher import ordered_records
from tala_ray.streaming.store import OnlineStore
from tala_ray.streaming.topic import StreamConfig, connect, ensure_group, ensure_topic
from tala_ray.traffic.replay import read_world_tables, request_payload
from tala_ray.traffic.stream_replay import replay, replay_plan

TABLES = ("applicants", "applications", "events", "loans")


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> Path:
    """A 600-applicant world written as Parquet tables (no Ray)."""
    root = tmp_path_factory.mktemp("stream_world")
    chunk = simulate_chunk(21, 0, 0, 600)
    for table in TABLES:
        (root / table).mkdir()
        pq.write_table(validation.conform(table, chunk[table]), root / table / "part-0.parquet")
    return root


@pytest.fixture(scope="module")
def world(world_dir) -> dict[str, pd.DataFrame]:
    return read_world_tables(str(world_dir))


@pytest.fixture(scope="module")
def registry(world, tmp_path_factory) -> str:
    """A logistic credit model and a small T-learner uplift model, trained on the world's applications."""
    fsv, registry = feature_set_version(), Registry(str(tmp_path_factory.mktemp("registry")))
    apps = world["applications"]
    features = compute_features(apps, world["applicants"], world["events"], world["loans"])
    X = features.set_index("application_id").loc[apps["application_id"]].reset_index(drop=True)
    names = list(X.columns)
    credit = LogisticCreditModel(C=1.0).fit(X, apps["defaulted"].to_numpy())
    meta = ArtifactMetadata(kind="credit", family="logistic", feature_set_version=fsv, feature_names=names)
    registry.set_alias("credit_pd", "champion", registry.register("credit_pd", credit.to_files(), meta).version)
    uplift = TLearnerUplift(nuisance_n_estimators=20, cv=2).fit(
        1 - apps["defaulted"].to_numpy(), apps["treatment"].to_numpy(), X=X
    )
    meta = ArtifactMetadata(kind="uplift", family=uplift.family, feature_set_version=fsv, feature_names=names)
    registry.set_alias("uplift", "champion", registry.register("uplift", uplift.to_files(), meta).version)
    return registry.uri


def _app(registry: str, config: StreamConfig, **settings) -> TestClient:
    store = OnlineStoreConfig(url=config.url, prefix=config.prefix)
    return TestClient(create_app(registry=registry, online_store=store, **settings))


def _load_before(store: OnlineStore, world_dir: Path, cutoff: dict[int, int]) -> None:
    """Write each applicant's records before its cutoff time (epoch ms) into the store."""
    from tala_ray.streaming.publisher import read_world_tables as raw_tables

    for kind, table in raw_tables(str(world_dir)).items():
        times = table.column(TIME_COLUMN[kind]).cast(pa.int64()).to_numpy()
        limits = np.array([cutoff.get(a, -1) for a in table.column("applicant_id").to_numpy()])
        kept = table.filter(pa.array(times < limits))
        store.apply(table_ops(kind, kept, [None] * kept.num_rows))


def _ms(times: pd.Series) -> np.ndarray:
    return pd.to_datetime(times, utc=True).astype("datetime64[ms, UTC]").astype("int64").to_numpy()


def _without_id(decision: dict) -> dict:
    return {k: v for k, v in decision.items() if k != "request_id"}


@pytest.fixture
def sample(world) -> pd.DataFrame:
    return world["applications"].sample(25, random_state=4)


def test_a_decision_by_id_equals_the_raw_body_decision_at_the_same_time(registry, config, world, world_dir, sample):
    store = OnlineStore(connect(config.url), config)
    _load_before(store, world_dir, dict(zip(sample["applicant_id"], _ms(sample["application_time"]), strict=True)))
    client = _app(registry, config)
    raw = [request_payload(world, row) for _, row in sample.iterrows()]
    by_id = [
        {"applicant_id": int(a), "application": r["application"]}
        for a, r in zip(sample["applicant_id"], raw, strict=True)
    ]
    for raw_body, id_body in zip(raw, by_id, strict=True):
        a, b = client.post("/v1/decisions", json=raw_body), client.post("/v1/decisions", json=id_body)
        assert a.status_code == b.status_code == 200, b.text
        assert _without_id(a.json()) == _without_id(b.json())
    batch_raw = client.post("/v1/decisions/batch", json={"applications": raw}).json()["decisions"]
    batch_id = client.post("/v1/decisions/batch", json={"applications": by_id}).json()["decisions"]
    assert [_without_id(d) for d in batch_raw] == [_without_id(d) for d in batch_id]
    assert len({d["decision"] for d in batch_id}) == 2  # approvals and declines (reason codes) both compared


def test_a_record_without_events_is_the_thin_file_decision_and_an_unknown_id_is_404(registry, config, world, world_dir):
    application = world["applications"].iloc[0]
    signup = _ms(world["applicants"].set_index("applicant_id").loc[[application["applicant_id"]], "signup_time"])[0]
    store = OnlineStore(connect(config.url), config)
    _load_before(store, world_dir, {int(application["applicant_id"]): int(signup) + 1})  # the applicant record only
    client = _app(registry, config)
    raw = request_payload(world, application) | {"events": [], "loans": []}
    by_id = {"applicant_id": int(application["applicant_id"]), "application": raw["application"]}
    thin, got = client.post("/v1/decisions", json=raw), client.post("/v1/decisions", json=by_id)
    assert got.status_code == 200 and _without_id(got.json()) == _without_id(thin.json())
    unknown = client.post("/v1/decisions", json=by_id | {"applicant_id": 987654321})
    assert unknown.status_code == 404 and "987654321" in unknown.json()["detail"][0]["msg"]
    batch = client.post("/v1/decisions/batch", json={"applications": [by_id, by_id | {"applicant_id": 55555555}]})
    assert batch.status_code == 404 and "55555555" in batch.text
    bad = client.post("/v1/decisions", json=by_id | {"application": raw["application"] | {"amount": -5}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "application", "amount"]


def test_the_store_down_is_503_with_retry_after(registry, world):
    from tala_ray.core.net import free_port

    down = StreamConfig(url=f"redis://127.0.0.1:{free_port()}/0", prefix="down")
    client = _app(registry, down)
    application = request_payload(world, world["applications"].iloc[0])["application"]
    for path, body in (
        ("/v1/decisions", {"applicant_id": 1, "application": application}),
        ("/v1/decisions/batch", {"applications": [{"applicant_id": 1, "application": application}]}),
        (
            "/v1/events",
            {
                "events": [
                    {
                        "event_id": 1,
                        "applicant_id": 1,
                        "event_time": "2025-01-01T00:00:00Z",
                        "event_type": "airtime",
                        "amount": 5.0,
                    }
                ]
            },
        ),
    ):
        response = client.post(path, json=body)
        assert response.status_code == 503 and response.headers["retry-after"] == "1", (path, response.text)


def test_posted_events_are_refused_naming_the_field_or_durable_on_the_broker(registry, config):
    ensure_topic(connect(config.url), config)  # the service appends with the topic's partition count
    client = _app(registry, config)
    good = {
        "event_id": 7,
        "applicant_id": 3,
        "event_time": "2025-03-01T10:00:00Z",
        "event_type": "mm_in",
        "amount": 20.5,
    }
    for event, loc in (
        (good | {"event_type": "lottery"}, ["body", "events", 1, "event_type"]),
        (good | {"amount": 1e13}, ["body", "events", 1, "amount"]),
        (good | {"colour": "red"}, ["body", "events", 1, "colour"]),
        ({k: v for k, v in good.items() if k != "event_id"}, ["body", "events", 1, "event_id"]),
    ):
        response = client.post("/v1/events", json={"events": [good, event]})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == loc, response.text
    future = good | {"event_time": "2099-01-01T00:00:00Z"}  # a time bound: the consumers' rule names it
    response = client.post("/v1/events", json={"events": [good, future]})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][:3] == ["body", "events", 1]
    redis_client = connect(config.url)
    assert sum(redis_client.xlen(k) for k in config.partition_keys()) == 0  # nothing of a refused batch appended
    response = client.post("/v1/events", json={"events": [good, good | {"event_id": 8, "applicant_id": 4}]})
    assert response.status_code == 200 and response.json() == {"accepted": 2}
    assert sum(redis_client.xlen(k) for k in config.partition_keys()) == 2  # on the broker (appendfsync always)


def _replayed(registry, config, world_dir, world, tmp_path, withhold=None):
    """The world's records replayed through the broker and one consumer while 60 applications are decided
    by id; the prediction log's rows."""
    client = connect(config.url)
    ensure_group(client, config)
    store = OnlineStore(client, config)
    from tala_ray.streaming.publisher import read_world_tables as raw_tables

    tables = raw_tables(str(world_dir))
    if withhold is not None:
        tables["event"] = tables["event"].filter(pa.array(tables["event"].column("event_id").to_numpy() != withhold))
    records = ordered_records(tables)
    applications = world["applications"].sample(60, random_state=9)
    stop = threading.Event()
    consumer = threading.Thread(target=Consumer(config, ConsumerSpec(block_ms=20)).run, args=(stop,), daemon=True)
    consumer.start()
    log_uri = str(tmp_path / f"log-{uuid.uuid4().hex[:6]}")
    app = _app(registry, config, prediction_log_uri=log_uri)
    try:
        result = replay(
            client, config, store, records, replay_plan(records, applications), lambda p, j: app.post(p, json=j)
        )
    finally:
        stop.set()
        consumer.join(10)
    assert result.decisions == 60
    app.app.state.prediction_log.flush()
    return read_prediction_log(log_uri), applications


def test_consistency_is_zero_after_a_replay_and_not_when_an_event_is_withheld(
    registry, config, world_dir, world, tmp_path
):
    log, applications = _replayed(registry, config, world_dir, world, tmp_path)
    raw = read_raw_tables(str(world_dir))
    report = consistency(log, raw)
    assert report.decisions == 60 and report.mismatch_rate == 0.0
    assert all(f.mismatch_rate == 0 and f.missing == f.extra == 0 and f.smape == 0 for f in report.features)
    # An event of a decided applicant, 10 days before its application, never reaches the stream.
    events = world["events"].merge(applications[["applicant_id", "application_time"]], on="applicant_id")
    before = events[
        (events["event_time"] < events["application_time"] - pd.Timedelta(days=10)) & (events["event_type"] == "mm_in")
    ]
    withheld = int(before.sort_values("event_time").iloc[-1]["event_id"])
    other = StreamConfig(url=config.url, prefix=config.prefix + "w", partitions=config.partitions)
    log, _ = _replayed(registry, other, world_dir, world, tmp_path, withhold=withheld)
    report = consistency(log, raw)
    assert 0 < report.mismatch_rate < 0.05
    worst = report.worst(1)[0]
    assert worst.mismatch_rate == pytest.approx(1 / 60) and worst.smape > 0


@pytest.mark.ray
def test_the_serve_application_decides_by_id_like_the_raw_body_and_takes_events(
    ray_cluster, registry, valkey, world, world_dir, tmp_path
):
    """Through the real Serve application (composed layout: the OnlineStore step its own deployment)."""
    import httpx
    import yaml
    from ray import serve

    from tala_ray.core.net import free_port
    from tala_ray.serving.launch import deploy, load_serve_config

    config = StreamConfig(url=valkey.url, prefix=f"serve{uuid.uuid4().hex[:6]}", partitions=3)
    sample = world["applications"].sample(6, random_state=5)
    store = OnlineStore(connect(config.url), config)
    _load_before(store, world_dir, dict(zip(sample["applicant_id"], _ms(sample["application_time"]), strict=True)))
    ensure_topic(connect(config.url), config)
    key = "stream-test-key-" + "y" * 24
    (tmp_path / "keys").write_text(key + "\n")
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "serve_configs" / "credit_decision.yaml").read_text())
    port = free_port()
    raw["http_options"]["port"] = port
    for deployment in raw["applications"][0]["deployments"]:
        deployment["ray_actor_options"] = {"num_cpus": 0.05}
    raw["applications"][0]["args"].update(
        registry_uri=registry,
        api_key_file=str(tmp_path / "keys"),
        prediction_log_uri=str(tmp_path / "log"),
        log_flush_interval_s=0.5,
        online_store={"url": config.url, "prefix": config.prefix},
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    deploy(load_serve_config(tmp_path / "config.yaml", pin_versions=True), timeout_s=240)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60)
    try:
        for _, row in sample.iterrows():
            body = request_payload(world, row)
            a = client.post("/v1/decisions", json=body)
            b = client.post(
                "/v1/decisions", json={"applicant_id": int(row["applicant_id"]), "application": body["application"]}
            )
            assert a.status_code == b.status_code == 200, b.text
            assert _without_id(a.json()) == _without_id(b.json())
        unknown = client.post("/v1/decisions", json={"applicant_id": 424242424, "application": body["application"]})
        assert unknown.status_code == 404 and "424242424" in unknown.text
        event = {
            "event_id": 99,
            "applicant_id": 1,
            "event_time": "2025-02-01T00:00:00Z",
            "event_type": "airtime",
            "amount": 3.0,
        }
        assert httpx.post(f"http://127.0.0.1:{port}/v1/events", json={"events": [event]}).status_code == 401
        assert client.post("/v1/events", json={"events": [event]}).json() == {"accepted": 1}
        spec = client.get("/openapi.json").json()["paths"]
        assert {"404", "503"} <= set(spec["/v1/decisions"]["post"]["responses"]) and "/v1/events" in spec
    finally:
        client.close()
        serve.shutdown()
    logged = read_prediction_log(str(tmp_path / "log"))
    by_id = logged[logged["applicant_id"].notna()]
    assert sorted(by_id["applicant_id"].astype(int)) == sorted(sample["applicant_id"].astype(int))
