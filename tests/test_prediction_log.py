"""Prediction log: nothing acknowledged is lost, concurrent appenders, newest-first reads, the CLI."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tala_ray.cli import app
from tala_ray.core.errors import UserError
from tala_ray.monitoring.prediction_log import PredictionLogClosed, PredictionLogWriter, read_prediction_log
from tala_ray.serving.records import LOG_COLUMN_TYPES


def record(request_id: str, **extra: object) -> dict:
    return {
        "request_id": request_id,
        "decision": "approve",
        "default_probability": 0.1,
        "credit_model_version": "3",
        "latency_ms": 4.2,
        **extra,
    }


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def test_every_acknowledged_row_is_written_by_close(tmp_path: Path) -> None:
    writer = PredictionLogWriter(str(tmp_path / "log"), flush_interval_s=60, max_buffer_rows=10_000)
    writer.append([record(f"r{i}") for i in range(250)])
    writer.append([record("last")])
    writer.close()
    writer.close()  # idempotent
    rows = read_prediction_log(str(tmp_path / "log"))
    assert sorted(rows["request_id"]) == sorted([f"r{i}" for i in range(250)] + ["last"])
    with pytest.raises(PredictionLogClosed):
        writer.append([record("too-late")])


def test_each_flush_writes_one_file_and_nested_values_keep_their_types(tmp_path: Path) -> None:
    root = tmp_path / "log"
    writer = PredictionLogWriter(str(root), flush_interval_s=60)
    writer.append([record("a", reason_codes=["R01", "R07"], by_option={"none": 1.5}), record("b")])
    assert writer.flush() == 2
    assert writer.flush() == 0
    writer.append([record("c")])
    writer.close()
    files = parquet_files(root)
    assert len(files) == 2
    assert all(f.parent.name.startswith("date=") for f in files)
    assert not list(root.rglob("*.tmp"))
    rows = read_prediction_log(str(root)).set_index("request_id")
    assert list(rows.loc["a", "reason_codes"]) == ["R01", "R07"] and rows.loc["b", "reason_codes"] is None
    assert rows.loc["a", "by_option"] == {"none": 1.5}
    assert rows.loc["a", "default_probability"] == 0.1 and rows.loc["a", "latency_ms"] == 4.2
    assert str(rows["logged_at"].dt.tz) == "UTC"


def test_pinned_column_types_are_the_same_in_every_file(tmp_path: Path) -> None:
    """Decisions without reasons, options or a key still write the serving log's schema."""
    root = tmp_path / "log"
    writer = PredictionLogWriter(str(root), flush_interval_s=3600, column_types=LOG_COLUMN_TYPES)
    writer.append([record("approved", reason_codes=[], expected_profit_by_option={}, idempotency_key=None)])
    writer.flush()
    writer.append(
        [record("declined", reason_codes=["R03"], expected_profit_by_option={"none": None}, idempotency_key="k")]
    )
    writer.close()
    schemas = [pq.read_schema(path) for path in parquet_files(root)]
    assert schemas[0] == schemas[1]
    for name, data_type in LOG_COLUMN_TYPES.items():
        assert schemas[0].field(name).type == data_type
    rows = read_prediction_log(str(root)).set_index("request_id")
    assert rows.loc["declined", "expected_profit_by_option"] == {"none": None}
    assert rows.loc["approved", "expected_profit_by_option"] == {}


def test_feature_columns_become_each_rows_features_struct(tmp_path: Path) -> None:
    """Numpy feature columns (as serving hands them over) are logged as one struct per row with
    their types, a missing number (NaN) as null; a chunk without some feature (or without
    features) has nulls there."""
    root = tmp_path / "log"
    writer = PredictionLogWriter(str(root), flush_interval_s=3600)
    writer.append([record("a")], features={"x": np.array([1.5]), "os": np.array(["ios"], dtype=object)})
    writer.append(
        [record("b"), record("c")],
        features={"x": np.array([np.nan, np.inf]), "os": np.array(["android", None], dtype=object)},
    )
    writer.append([record("d")])
    writer.append([record("e")], features={"y": np.array([7])})
    with pytest.raises(ValueError, match="one value per row"):
        writer.append([record("f")], features={"x": np.array([1.0, 2.0])})
    with pytest.raises(ValueError, match="features: pass feature values"):
        writer.append([record("g", features={"x": 1.0})])
    assert writer.buffered_rows == 5
    writer.close()
    logged = read_prediction_log(str(root)).set_index("request_id")["features"]
    assert logged["a"] == {"x": 1.5, "os": "ios", "y": None}
    assert logged["b"] == {"x": None, "os": "android", "y": None}
    assert logged["c"] == {"x": np.inf, "os": None, "y": None}
    assert logged["d"] is None
    assert logged["e"] == {"x": None, "os": None, "y": 7}
    assert sorted(logged.index) == ["a", "b", "c", "d", "e"]


def test_columns_are_appended_like_rows(tmp_path: Path) -> None:
    """`append_columns` (serving's way) writes what `append` writes for the same rows; a column
    one append lacks is null there, and sizes are checked."""
    root = tmp_path / "log"
    writer = PredictionLogWriter(str(root), flush_interval_s=3600)
    writer.append_columns({"request_id": ["a", "b"], "latency_ms": [1.0, 2.0]}, 2, features={"x": np.array([1.0, 2.0])})
    writer.append([{"request_id": "c", "decision": "decline"}, {"request_id": "d"}])
    with pytest.raises(ValueError, match="columns: every column needs one value per row"):
        writer.append_columns({"request_id": ["e"], "latency_ms": [1.0, 2.0]}, 1)
    with pytest.raises(ValueError, match="features: pass feature values"):
        writer.append_columns({"features": [{}]}, 1)
    writer.close()
    rows = read_prediction_log(str(root)).set_index("request_id")
    assert rows.loc["b", "latency_ms"] == 2.0 and rows.loc["b", "features"] == {"x": 2.0}
    assert rows.loc["c", "decision"] == "decline" and pd.isna(rows.loc["a", "decision"])
    assert rows.loc["d", "features"] is None and np.isnan(rows.loc["d", "latency_ms"])
    assert sorted(rows.index) == ["a", "b", "c", "d"]


def test_feature_numbers_are_logged_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    numbers = rng.normal(size=50) * 10.0 ** rng.integers(-8, 12, size=50)
    root = tmp_path / "log"
    writer = PredictionLogWriter(str(root), flush_interval_s=3600)
    writer.append([record(f"r{i:02d}") for i in range(50)], features={"x": numbers, "n": np.arange(50)})
    writer.close()
    logged = read_prediction_log(str(root)).sort_values("request_id")["features"]
    assert [row["x"] for row in logged] == numbers.tolist()
    assert [row["n"] for row in logged] == list(range(50))


def test_timer_flushes_without_close(tmp_path: Path) -> None:
    root = tmp_path / "log"
    writer = PredictionLogWriter(str(root), flush_interval_s=0.05)
    writer.append([record("timed")])
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while not parquet_files(root) and datetime.now(UTC) < deadline:
            threading.Event().wait(0.02)
        assert list(read_prediction_log(str(root))["request_id"]) == ["timed"]
    finally:
        writer.close()


def test_full_buffer_wakes_the_flusher(tmp_path: Path) -> None:
    root = tmp_path / "log"
    writer = PredictionLogWriter(str(root), flush_interval_s=3600, max_buffer_rows=5)
    writer.append([record(f"r{i}") for i in range(5)])
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while writer.buffered_rows and datetime.now(UTC) < deadline:
            threading.Event().wait(0.02)
        assert len(parquet_files(root)) == 1
    finally:
        writer.close()


def test_concurrent_appenders_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "log"
    writer = PredictionLogWriter(str(root), flush_interval_s=0.01, max_buffer_rows=50)
    threads_count, rows_each = 8, 300

    def append_rows(thread: int) -> None:
        for i in range(rows_each):
            writer.append([record(f"t{thread}-{i}", thread=thread)])

    threads = [threading.Thread(target=append_rows, args=(t,)) for t in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    rows = read_prediction_log(str(root))
    expected = {f"t{t}-{i}" for t in range(threads_count) for i in range(rows_each)}
    assert len(rows) == len(expected)
    assert set(rows["request_id"]) == expected
    assert len(parquet_files(root)) > 1


def test_failed_write_keeps_rows_for_the_next_flush(tmp_path: Path) -> None:
    blocker = tmp_path / "log"
    blocker.write_text("a file where the log directory should be")
    writer = PredictionLogWriter(str(blocker), flush_interval_s=3600)
    writer.append([record("kept")])
    writer.append([record("with-features")], features={"x": np.array([3.0])})
    with pytest.raises(OSError):
        writer.flush()
    assert writer.buffered_rows == 2
    blocker.unlink()
    writer.close()
    logged = read_prediction_log(str(blocker)).set_index("request_id")["features"]
    assert sorted(logged.index) == ["kept", "with-features"]
    assert logged["with-features"] == {"x": 3.0} and logged["kept"] is None


def test_read_newest_first_with_limit_and_since(tmp_path: Path) -> None:
    root = str(tmp_path / "log")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    writer = PredictionLogWriter(root, flush_interval_s=3600)
    for batch in range(4):
        writer.append([record(f"b{batch}-{i}", logged_at=start + timedelta(minutes=10 * batch + i)) for i in range(3)])
        writer.flush()
    writer.close()
    newest = read_prediction_log(root, limit=4)
    assert list(newest["request_id"]) == ["b3-2", "b3-1", "b3-0", "b2-2"]
    assert newest["logged_at"].is_monotonic_decreasing
    assert len(read_prediction_log(root)) == 12
    assert read_prediction_log(root, limit=0).empty
    recent = read_prediction_log(root, since=datetime(2026, 1, 1, 0, 20))  # naive: UTC
    assert sorted(recent["request_id"]) == ["b2-0", "b2-1", "b2-2", "b3-0", "b3-1", "b3-2"]


def test_read_merges_files_of_concurrent_writers_by_time(tmp_path: Path) -> None:
    """A row logged earlier may sit in a file flushed later (another replica); newest rows still come first."""
    root = str(tmp_path / "log")
    now = datetime.now(UTC)
    replica_a, replica_b = (
        PredictionLogWriter(root, flush_interval_s=3600),
        PredictionLogWriter(root, flush_interval_s=3600),
    )
    replica_a.append([record("a-new", logged_at=now)])
    replica_a.close()
    replica_b.append([record("b-old", logged_at=now - timedelta(seconds=5))])
    replica_b.close()
    assert list(read_prediction_log(root, limit=1)["request_id"]) == ["a-new"]
    assert list(read_prediction_log(root, limit=2)["request_id"]) == ["a-new", "b-old"]


def test_reading_a_missing_log_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="uri: no prediction log"):
        read_prediction_log(str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="limit"):
        read_prediction_log(str(tmp_path), limit=-1)


def test_cli_log_read_prints_recent_rows(tmp_path: Path) -> None:
    root = str(tmp_path / "log")
    writer = PredictionLogWriter(root, flush_interval_s=3600)
    writer.append([record(f"req-{i}") for i in range(5)])
    writer.close()
    runner = CliRunner()
    result = runner.invoke(app, ["log", "read", "--uri", root, "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "req-4" in result.output and "req-3" in result.output and "req-0" not in result.output
    assert "latency_ms" in result.output
    full = runner.invoke(app, ["log", "read", "--uri", root, "--limit", "1", "--full"])
    assert full.exit_code == 0, full.output
    assert pd.read_json(io.StringIO(full.output), lines=True)["request_id"].tolist() == ["req-4"]
    missing = runner.invoke(app, ["log", "read", "--uri", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0
