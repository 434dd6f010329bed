"""The Ray Data feature pipeline on a real local cluster: output, quarantine, input contracts, and
parity of the online path with the batch table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tala_ray.data import schema
from tala_ray.data.generate import PARTITION_KEY, generate_world, read_manifest
from tala_ray.data.validation import SchemaMismatchError
from tala_ray.features import layout
from tala_ray.features.build import build_feature_table, check_inputs
from tala_ray.features.definitions import FEATURES, compute_features, feature_set_version
from tala_ray.features.online import ApplicationRequest, features_from_requests
from tala_ray.features.table import KEY_COLUMNS, read_feature_manifest, read_feature_table, read_quarantine
from tala_ray.traffic.replay import request_payload

pytestmark = pytest.mark.ray

RAW = ("applicants", "events", "loans", "applications")
# Online and batch run the same code on the same values; timestamps pass through ISO strings.
PARITY_RTOL, PARITY_ATOL = 1e-12, 1e-12


def read_raw(world: Path) -> dict[str, pa.Table]:
    return {name: pq.read_table(world / name) for name in RAW}


@pytest.fixture(scope="module")
def corrupted(small_world, tmp_path_factory) -> tuple[Path, dict[str, dict[str, int]]]:
    """The small world with bad rows planted in its raw tables, and what was planted."""
    world = tmp_path_factory.mktemp("corrupted") / "world"
    return world, corrupt(small_world, world)


@pytest.fixture(scope="module")
def built(corrupted, tmp_path_factory) -> Path:
    """One Ray Data build (of the corrupted world) shared by the tests of this module."""
    out = tmp_path_factory.mktemp("features") / "table"
    build_feature_table(str(corrupted[0]), str(out), engine="ray", num_buckets=3)
    return out


def test_build_writes_a_partitioned_table_and_its_manifest(built):
    manifest = read_feature_manifest(str(built))
    assert manifest.feature_set_version == feature_set_version()
    assert manifest.feature_names == [f.name for f in FEATURES]
    assert manifest.rows_in["applications"] == 4_002 and manifest.rows_out == 4_000
    assert manifest.rows_in["events"] > 100_000 and manifest.engine == "ray"
    assert manifest.world_content_hash is None  # a raw source without a world manifest
    assert {p.name for p in (built / "table").iterdir()} == {"cohort=experiment", "cohort=historical"}


def test_the_single_process_engine_gives_the_same_table_and_records_the_world(built, small_world, tmp_path):
    manifest = build_feature_table(str(small_world), str(tmp_path / "local"), engine="local")
    assert manifest.world_content_hash == read_manifest(str(small_world)).content_hash and manifest.quarantined == {}
    pd.testing.assert_frame_equal(read_feature_table(str(tmp_path / "local")), read_feature_table(str(built)))


def test_both_raw_layouts_give_the_single_process_table_bit_for_bit(small_world, tmp_path, monkeypatch):
    """A world written partitioned by applicant (same bytes, applicant_part=<chunk>/ directories) is
    read partition by partition; the plain one is shuffled by applicant first (in several units per
    table: every applicant's rows come from several tasks and must keep their order); both tables
    equal the single-process engine's exactly, and the shuffle leaves no staged files behind."""
    monkeypatch.setattr(layout, "MAX_UNIT_ROWS", 50_000)  # the small world's event files: one unit each
    assert len([u for u in layout.source_units(str(small_world)) if u.table == "events"]) == 4
    partitioned = tmp_path / "partitioned"
    spec = read_manifest(str(small_world)).spec.model_copy(update={"partitioned": True})
    written = generate_world(spec, str(partitioned), progress=False)
    plain = read_manifest(str(small_world))
    for name in RAW:
        assert sorted(written.tables[name].files.values()) == sorted(plain.tables[name].files.values())
        assert all(f"/{PARTITION_KEY}=" in path for path in written.tables[name].files)
    local = build_feature_table(str(small_world), str(tmp_path / "local"), engine="local")
    expected = read_feature_table(str(tmp_path / "local"))
    for world, how, partitions in ((partitioned, "partitioned", 4), (small_world, "shuffled", 3)):
        out = tmp_path / f"ray-{how}"
        manifest = build_feature_table(str(world), str(out), engine="ray", num_buckets=3)
        assert (manifest.layout, manifest.partitions) == (how, partitions)
        assert manifest.rows_out == local.rows_out and manifest.quarantined == local.quarantined == {}
        pd.testing.assert_frame_equal(read_feature_table(str(out)), expected, check_exact=True)
        assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "table"]


def test_shuffle_units_pack_consecutive_row_groups_up_to_the_row_budget(monkeypatch):
    monkeypatch.setattr(layout, "MAX_UNIT_ROWS", 10)
    groups = [("a", 0, 4), ("a", 1, 4), ("b", 0, 3), ("c", 0, 12), ("c", 1, 2), ("d", 0, 8)]
    assert layout._packed(groups) == [groups[:2], [groups[2]], [groups[3]], groups[4:]]


def test_ray_table_equals_the_feature_code_run_in_one_process(built, small_world):
    table = read_feature_table(str(built))
    raw = {name: t.to_pandas() for name, t in read_raw(small_world).items()}
    expected = compute_features(raw["applications"], raw["applicants"], raw["events"], raw["loans"])
    assert list(table.columns) == [*KEY_COLUMNS, *[f.name for f in FEATURES]]
    assert table["application_id"].is_unique
    expected = expected.set_index("application_id").loc[table["application_id"]].reset_index()
    pd.testing.assert_frame_equal(table[expected.columns], expected, check_exact=False, rtol=1e-12)
    keys = raw["applications"].set_index("application_id").loc[table["application_id"]]
    assert (table["defaulted"].to_numpy() == keys["defaulted"].to_numpy()).all()
    assert (table["cohort"].to_numpy() == keys["cohort"].to_numpy()).all()


def corrupt(world: Path, out: Path) -> dict[str, dict[str, int]]:
    """Copy the world's raw tables with bad rows appended; return table -> reason -> rows planted."""
    raw = read_raw(world)
    first = {name: t.slice(0, 1).to_pylist()[0] for name, t in raw.items()}
    t0 = first["applications"]["application_time"]
    bad = {
        "events": [
            {**first["events"], "amount": -5.0},
            {**first["events"], "amount": -1.0},
            {**first["events"], "event_type": "lottery"},
            {**first["events"], "event_time": pd.Timestamp("1970-01-02", tz="UTC").to_pydatetime()},
            {**first["events"], "applicant_id": None},
        ],
        "loans": [{**first["loans"], "due_time": first["loans"]["disbursed_time"] - pd.Timedelta(days=3)}],
        "applications": [
            {**first["applications"], "application_id": 77, "amount": -10.0},
            {**first["applications"], "application_id": 78, "applicant_id": 99_999_999, "application_time": t0},
        ],
    }
    for name, table in raw.items():
        nullable = pa.schema([f.with_nullable(True) for f in schema.TABLES[name]])
        extra = pa.Table.from_pylist(bad.get(name, []), schema=nullable)
        (out / name).mkdir(parents=True)
        pq.write_table(pa.concat_tables([table.cast(nullable), extra]), out / name / "part-0.parquet")
    return {
        "events": {"negative_amount": 2, "unknown_event_type": 1, "impossible_timestamp": 1, "missing_id": 1},
        "loans": {"impossible_timestamp": 1},
        "applications": {"non_positive_amount": 1, "missing_applicant": 1},
    }


def test_bad_rows_are_quarantined_with_a_reason_and_counted(built, corrupted):
    planted = corrupted[1]
    assert read_feature_manifest(str(built)).quarantined == planted
    events = read_quarantine(str(built), "events")
    assert sorted(events["reason"]) == sorted(r for r, n in planted["events"].items() for _ in range(n))
    assert events.loc[events["reason"] == "negative_amount", "amount"].lt(0).all()
    applications = read_quarantine(str(built), "applications")
    assert set(applications["application_id"]) == {77, 78}
    assert not read_feature_table(str(built))["application_id"].isin([77, 78]).any()


def write_world(out: Path, replace: dict[str, pa.Table]) -> None:
    for name in RAW:
        (out / name).mkdir(parents=True)
        pq.write_table(replace.get(name, schema.TABLES[name].empty_table()), out / name / "part-0.parquet")


def test_a_missing_column_stops_the_job_naming_table_and_column(small_world, tmp_path):
    events = read_raw(small_world)["events"]
    write_world(tmp_path, {"events": events.drop_columns(["amount"])})
    with pytest.raises(SchemaMismatchError, match=r"table 'events': required column 'amount' is missing"):
        check_inputs(str(tmp_path))


def test_a_wrong_type_stops_the_job_naming_table_and_column(small_world, tmp_path):
    loans = read_raw(small_world)["loans"]
    wrong = loans.set_column(loans.schema.get_field_index("repaid"), "repaid", pa.array(["yes"] * loans.num_rows))
    write_world(tmp_path, {"loans": wrong})
    with pytest.raises(SchemaMismatchError, match=r"table 'loans': column 'repaid' has type string, expected bool"):
        build_feature_table(str(tmp_path), str(tmp_path / "out"))


def test_cli_reports_a_bad_input_in_one_line(tmp_path):
    write_world(tmp_path, {})
    (tmp_path / "loans" / "part-0.parquet").unlink()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tala_ray.cli",
            "features",
            "build",
            "--world",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: world")


@pytest.mark.parametrize("include_future", [False, True])
def test_online_features_equal_the_batch_table(built, small_world, include_future):
    raw = {name: t.to_pandas() for name, t in read_raw(small_world).items()}
    sample = raw["applications"].sample(60, random_state=5).reset_index(drop=True)
    requests = [
        ApplicationRequest.model_validate_json(json.dumps(request_payload(raw, row, include_future)))
        for _, row in sample.iterrows()
    ]
    online = features_from_requests(requests)
    batch = read_feature_table(str(built)).set_index("application_id").loc[sample["application_id"]].reset_index()
    names = [f.name for f in FEATURES]
    pd.testing.assert_frame_equal(online[names], batch[names], check_exact=False, rtol=PARITY_RTOL, atol=PARITY_ATOL)
    assert np.isfinite(online["inflow_sum_90d_usd"]).all()
