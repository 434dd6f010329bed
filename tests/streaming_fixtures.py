"""Fixtures and helpers of the streaming tests: a real embedded Valkey server, a small world's raw tables,
and what the online store must hold for them (computed from the raw tables, independently of the store)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from tala_ray.data import validation
from tala_ray.data.world import simulate_chunk
from tala_ray.features.definitions import feature_columns
from tala_ray.features.timeutil import DAY_MS
from tala_ray.streaming.codec import KIND_TABLE
from tala_ray.streaming.server import ServerInfo, start_server, stop_server
from tala_ray.streaming.store import OnlineStore
from tala_ray.streaming.topic import StreamConfig, connect

WINDOW_MS = 180 * DAY_MS  # the longest feature window, written out: the store's trim is checked against it


@pytest.fixture(scope="module")
def valkey(tmp_path_factory) -> Iterator[ServerInfo]:
    """A real embedded Valkey server (AOF, appendfsync always) for the module, stopped by its pid."""
    info = start_server(tmp_path_factory.mktemp("valkey"))
    yield info
    stop_server(info)


@pytest.fixture
def config(valkey) -> StreamConfig:
    """A stream config under a fresh key prefix: every test sees an empty topic and store."""
    return StreamConfig(url=valkey.url, prefix=f"t{uuid.uuid4().hex[:8]}", partitions=3)


def world_tables(applicants: int, seed: int = 5) -> dict[str, pa.Table]:
    """A small world's raw applicants, events and loans per record kind, in their contracts."""
    chunk = simulate_chunk(seed, 0, 0, applicants)
    return {kind: validation.conform(table, chunk[table]) for kind, table in KIND_TABLE.items()}


def expected_tables(
    tables: dict[str, pa.Table], applicant_ids: list[int], trim: bool = True
) -> dict[str, dict[str, np.ndarray]]:
    """What `online_tables` must give for `applicant_ids`: their raw rows, events within the window before
    each applicant's newest event (all of them without `trim`), in (time, event id) order, loans in
    (disbursal, loan id) order."""
    frames = {kind: table.to_pandas() for kind, table in tables.items()}
    position = {a: i for i, a in enumerate(applicant_ids)}
    events = frames["event"][frames["event"]["applicant_id"].isin(position)].copy()
    ms = events["event_time"].astype("datetime64[ms, UTC]").astype("int64")
    newest = ms.groupby(events["applicant_id"]).transform("max")
    events = events.assign(_ms=ms, _pos=events["applicant_id"].map(position))
    events = events[ms >= newest - WINDOW_MS] if trim else events
    events = events.sort_values(["_pos", "_ms", "event_id"])
    loans = frames["loan"][frames["loan"]["applicant_id"].isin(position)].copy()
    loans = loans.assign(_pos=loans["applicant_id"].map(position)).sort_values(["_pos", "disbursed_time", "loan_id"])
    applicants = frames["applicant"].set_index("applicant_id").loc[applicant_ids]

    def times(series) -> np.ndarray:
        return series.astype("datetime64[ms, UTC]").astype("int64").to_numpy()

    def objects(series) -> np.ndarray:
        return np.array([None if v is None or v != v else v for v in series], dtype=object)

    return {
        "applicants": {
            "applicant_id": np.arange(len(applicant_ids)),
            "country": objects(applicants["country"]),
            "signup_time": times(applicants["signup_time"]),
            "device_os": objects(applicants["device_os"]),
            "device_price_usd": applicants["device_price_usd"].to_numpy(dtype=float),
            "device_age_months": applicants["device_age_months"].to_numpy(dtype=float),
        },
        "events": {
            "applicant_id": events["_pos"].to_numpy(),
            "event_time": events["_ms"].to_numpy(),
            "event_type": objects(events["event_type"]),
            "amount": events["amount"].to_numpy(dtype=float),
            "app_category": objects(events["app_category"]),
        },
        "loans": {
            "applicant_id": loans["_pos"].to_numpy(),
            "disbursed_time": times(loans["disbursed_time"]),
            "due_time": times(loans["due_time"]),
            "amount": loans["amount"].to_numpy(dtype=float),
            "repaid": loans["repaid"].to_numpy(dtype=bool),
            "days_late": loans["days_late"].to_numpy(dtype=float),
        },
    }


def assert_same_tables(got: dict[str, dict[str, np.ndarray]], want: dict[str, dict[str, np.ndarray]]) -> None:
    """Same tables, columns, dtypes kinds and values (NaN equal to NaN, None to None)."""
    assert got.keys() == want.keys()
    for table, columns in want.items():
        assert got[table].keys() == columns.keys(), table
        for name, values in columns.items():
            found = got[table][name]
            assert len(found) == len(values), (table, name, len(found), len(values))
            if values.dtype == object:
                assert found.tolist() == values.tolist(), (table, name)
            else:
                np.testing.assert_array_equal(found, values, err_msg=f"{table}.{name}", strict=False)


def store_matches_world(store: OnlineStore, tables: dict[str, pa.Table]) -> None:
    """The store holds exactly what the raw tables give, and the shared feature code computes the same
    features (bit for bit) on it as on the raw rows, at a decision time after every record."""
    applicant_ids = tables["applicant"].column("applicant_id").to_pylist()
    got, want = store.online_tables(applicant_ids), expected_tables(tables, applicant_ids)
    assert_same_tables(got, want)
    # Decided just after each applicant's last record, the features read only what the store kept.
    last = want["applicants"]["signup_time"].copy()
    np.maximum.at(last, want["events"]["applicant_id"], want["events"]["event_time"])
    positions = np.arange(len(applicant_ids))
    applications = {
        "application_id": positions,
        "applicant_id": positions,
        "application_time": last + 1,
        "amount": np.full(len(positions), 5_000.0),
        "term_days": np.full(len(positions), 30.0),
    }
    full = expected_tables(tables, applicant_ids, trim=False)
    online = feature_columns(applications, got["applicants"], got["events"], got["loans"])
    offline = feature_columns(applications, full["applicants"], full["events"], full["loans"])
    assert np.isfinite(offline["inflow_sum_90d_usd"]).all() and (offline["event_count_90d"] > 0).mean() > 0.9
    for name, values in offline.items():
        np.testing.assert_array_equal(online[name], values, err_msg=name)


def wait_until(predicate, timeout_s: float = 60.0, every_s: float = 0.1) -> None:
    """Poll `predicate` until it holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every_s)


def client_of(config: StreamConfig):
    return connect(config.url)
