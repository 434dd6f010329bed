"""The live period and its planted scenarios: the training world is untouched, each change is where
and when the truth says, and outcomes are released when they would be known."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from pydantic import ValidationError

from tala_ray.core.errors import UserError
from tala_ray.data import schema
from tala_ray.data.generate import WorldSpec, generate_world
from tala_ray.data.outcomes import (
    POTENTIAL_OUTCOMES,
    RELEASE_PARTITION,
    WRITE_OFF_DAYS_LATE,
    Delivery,
    release_outcomes,
    write_release,
)
from tala_ray.data.scenarios import LIVE_START_MS, LiveSpec, scenario_record, simulate_live_chunk
from tala_ray.data.world import simulate_chunk
from tala_ray.features.definitions import compute_features

# The tables of simulate_chunk(3, 1, 500, 400) as Arrow IPC, hashed with the code before live periods existed.
TRAINING_CHUNK_SHA256 = "15831488a5bb0d8f51b975c23cb2136ba7a86861b054f7c52c8a3caa3f57f3af"
N_LIVE = 6_000


def _ipc_hash(tables: dict[str, pa.Table]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tables):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, tables[name].schema) as writer:
            writer.write_table(tables[name])
        digest.update(name.encode())
        digest.update(sink.getvalue().to_pybytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def live_worlds() -> dict[str, dict[str, pd.DataFrame]]:
    """Every scenario's live chunk (same seed), with its features."""
    worlds = {}
    for scenario in ("none", "income_shock", "new_channel", "betting_wave"):
        spec = LiveSpec(applicants=N_LIVE, scenario=scenario)
        tables = {k: t.to_pandas() for k, t in simulate_live_chunk(5, 0, 10_000, N_LIVE, spec).items()}
        tables["features"] = compute_features(
            tables["applications"], tables["applicants"], tables["events"], tables["loans"]
        )
        tables["applications"] = tables["applications"].merge(tables["applicants"][["applicant_id", "country"]])
        worlds[scenario] = tables
    return worlds


def _after_onset(world: dict[str, pd.DataFrame]) -> np.ndarray:
    onset = pd.Timestamp(LiveSpec().onset_ms, unit="ms", tz="UTC")
    return (world["applications"]["application_time"] >= onset).to_numpy()


def test_the_training_world_is_what_it_was_before_live_periods():
    assert _ipc_hash(simulate_chunk(3, 1, 500, 400)) == TRAINING_CHUNK_SHA256


def test_live_tables_keep_the_contract_and_follow_the_training_period(live_worlds):
    tables = simulate_live_chunk(2, 0, 9_000, 300, LiveSpec(applicants=300, scenario="betting_wave"))
    for name, table in tables.items():
        expected = POTENTIAL_OUTCOMES if name == "potential_outcomes" else schema.TABLES[name]
        assert table.schema.equals(expected), name
    again = simulate_live_chunk(2, 0, 9_000, 300, LiveSpec(applicants=300, scenario="betting_wave"))
    assert all(tables[name].equals(again[name]) for name in tables)
    apps = live_worlds["none"]["applications"]
    start = pd.Timestamp(LIVE_START_MS, unit="ms", tz="UTC")
    assert apps["application_time"].min() >= start
    assert apps["application_time"].max() < start + pd.Timedelta(days=56)
    assert apps["applicant_id"].min() == 10_000


def test_potential_outcomes_follow_the_true_default_probabilities(live_worlds):
    world = live_worlds["none"]
    po, truth = world["potential_outcomes"], world["truth"]
    assert (po["application_id"] == truth["application_id"]).all()
    for column, pd_column in (("defaulted_control", "pd_control"), ("defaulted_treated", "pd_treated")):
        assert abs(po[column].mean() - truth[pd_column].mean()) < 3 * np.sqrt(0.2 / N_LIVE)
    # one draw against both options: an intervention that lowers the PD never turns a repayment into a default
    helped = truth["pd_treated"] <= truth["pd_control"]
    assert (po.loc[helped, "defaulted_treated"] <= po.loc[helped, "defaulted_control"]).all()
    assert not po["affected"].any()


def test_income_shock_hits_one_country_from_the_onset(live_worlds):
    none, shock = live_worlds["none"], live_worlds["income_shock"]
    after, kenya = _after_onset(shock), (shock["applications"]["country"] == "KE").to_numpy()
    assert (shock["potential_outcomes"]["affected"].to_numpy() == (after & kenya)).all()
    inflow = "inflow_sum_30d_usd"
    ratio = shock["features"].loc[after & kenya, inflow].median() / none["features"].loc[after & kenya, inflow].median()
    assert ratio < 0.85, "inflows fall in KE after the onset"
    others = after & ~kenya
    assert shock["features"].loc[others, inflow].median() == pytest.approx(
        none["features"].loc[others, inflow].median()
    )
    assert (
        shock["truth"].loc[after & kenya, "pd_control"].mean() > none["truth"].loc[after & kenya, "pd_control"].mean()
    )


def test_new_channel_brings_younger_thin_file_applicants(live_worlds):
    channel = live_worlds["new_channel"]
    affected = channel["potential_outcomes"]["affected"].to_numpy()
    assert not affected[~_after_onset(channel)].any()
    assert 0.3 < affected[_after_onset(channel)].mean() < 0.5
    features = channel["features"]
    assert features.loc[affected, "tenure_days"].median() < 60 < features.loc[~affected, "tenure_days"].median()
    assert (
        features.loc[affected, "event_count_90d"].median() < 0.5 * features.loc[~affected, "event_count_90d"].median()
    )
    assert features.loc[affected, "prior_loan_count"].mean() < 0.5


def test_betting_wave_raises_defaults_and_turns_the_intervention_harmful(live_worlds):
    none, wave = live_worlds["none"], live_worlds["betting_wave"]
    affected = wave["potential_outcomes"]["affected"].to_numpy()
    after = _after_onset(wave)
    assert not affected[~after].any() and 0.35 < affected[after].mean() < 0.65
    installs = "betting_installs_90d"
    assert wave["features"].loc[after, installs].mean() > none["features"].loc[after, installs].mean() + 0.5
    assert (wave["truth"].loc[affected, "true_uplift"] < 0).all(), "the intervention harms every wave bettor"
    assert wave["truth"].loc[after, "pd_control"].mean() > none["truth"].loc[after, "pd_control"].mean() + 0.05


def test_scenario_records_say_what_changed_and_when():
    record = scenario_record(LiveSpec(applicants=10, scenario="income_shock", country="MX", onset_day=10))
    assert record.countries == ["MX"] and record.onset.isoformat() == "2026-07-05T00:00:00+00:00"
    assert "inflow_" in record.changed_features and not record.concept_drift
    assert scenario_record(LiveSpec(applicants=10, scenario="betting_wave")).concept_drift
    assert scenario_record(LiveSpec(applicants=10)).onset is None
    with pytest.raises(ValidationError, match="onset_day"):
        LiveSpec(days=20, onset_day=20)
    with pytest.raises(ValidationError, match="country"):
        LiveSpec(country="FR")


def test_outcomes_are_released_when_known_for_the_option_served(live_worlds, tmp_path):
    po = live_worlds["none"]["potential_outcomes"]
    rng = np.random.default_rng(0)
    served = pd.DataFrame(
        {
            "application_id": po["application_id"],
            "lent": rng.random(len(po)) < 0.7,
            "treated": rng.random(len(po)) < 0.5,
        }
    )
    delivery = Delivery(late_share=0.1, duplicate_share=0.05, seed=3)
    records = release_outcomes(po, served, delivery)
    first = records.drop_duplicates("application_id")
    assert set(first["application_id"]) == set(served.loc[served["lent"], "application_id"])
    assert 0.03 < 1 - len(first) / len(records) < 0.07, "some outcomes are delivered twice"
    truth = po[["application_id", "defaulted_control", "defaulted_treated"]]
    outcome = first.merge(truth, on="application_id").merge(served, on="application_id")
    expected = np.where(outcome["treated"], outcome["defaulted_treated"], outcome["defaulted_control"])
    assert (outcome["defaulted"] == expected).all()
    late_days = (outcome["known_time"] - outcome["due_time"]).dt.days
    assert (late_days[outcome["defaulted"] == 1] == WRITE_OFF_DAYS_LATE).all()
    assert (late_days[outcome["defaulted"] == 0] < WRITE_OFF_DAYS_LATE).all()
    assert (records["delivered_time"] >= records["known_time"]).all()
    assert 0.05 < (records["delivered_time"] > records["known_time"]).mean() < 0.2

    written = write_release(records, str(tmp_path / "outcomes"))
    assert sum(written.values()) == len(records)
    day = sorted(written)[3]
    part = pads.dataset(tmp_path / "outcomes" / f"{RELEASE_PARTITION}={day}", format="parquet").to_table().to_pandas()
    assert (part["delivered_time"].dt.strftime("%Y-%m-%d") == day).all()
    with pytest.raises(UserError, match="not empty"):
        write_release(records, str(tmp_path / "outcomes"))
    with pytest.raises(UserError, match="no potential outcome"):
        release_outcomes(po.iloc[10:], served.assign(lent=True))


@pytest.mark.ray
def test_a_generated_world_has_the_live_period_beside_the_training_one(ray_cluster, tmp_path):
    plain = generate_world(WorldSpec(applicants=1_500, seed=4, chunk_size=1_000), str(tmp_path / "a"), progress=False)
    spec = WorldSpec(
        applicants=1_500, seed=4, chunk_size=1_000, live=LiveSpec(applicants=1_200, scenario="new_channel")
    )
    live = generate_world(spec, str(tmp_path / "b"), progress=False)
    assert plain.live is None and live.live is not None and live.live.name == "new_channel"
    for name in schema.TABLES:  # the training tables are the same files with or without a live period
        assert live.tables[name].files == plain.tables[name].files
    assert live.tables["live/applications"].rows == 1_200
    assert live.tables["live/potential_outcomes"].rows == 1_200
    assert set(live.tables) - set(plain.tables) == {f"live/{n}" for n in (*schema.TABLES, "potential_outcomes")}
