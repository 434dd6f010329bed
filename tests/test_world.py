"""The synthetic world: determinism, plausibility, and the ground truth's properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from tala_ray.data import schema
from tala_ray.data.generate import WorldSpec, generate_world, read_manifest
from tala_ray.data.world import simulate_chunk


@pytest.fixture(scope="module")
def chunk() -> dict[str, pd.DataFrame]:
    tables = simulate_chunk(seed=3, chunk_index=0, first_id=0, n=30_000)
    return {name: table.to_pandas() for name, table in tables.items()}


def test_chunk_is_deterministic_in_seed_and_index():
    a = simulate_chunk(5, 2, 100, 500)
    b = simulate_chunk(5, 2, 100, 500)
    c = simulate_chunk(6, 2, 100, 500)
    assert all(a[name].equals(b[name]) for name in a)
    assert not a["events"].equals(c["events"])


def test_tables_match_their_schemas(chunk):
    tables = simulate_chunk(3, 0, 0, 200)
    for name, table in tables.items():
        assert table.schema.equals(schema.TABLES[name]), name


def test_default_rate_is_plausible_and_differs_by_country(chunk):
    apps = chunk["applications"].merge(chunk["applicants"][["applicant_id", "country"]], on="applicant_id")
    overall = apps["defaulted"].mean()
    by_country = apps.groupby("country")["defaulted"].mean()
    assert 0.08 <= overall <= 0.25
    assert set(by_country.index) == set(schema.COUNTRIES)
    assert by_country.max() - by_country.min() > 0.03


def test_best_possible_auc_is_high_but_not_perfect(chunk):
    apps, truth = chunk["applications"], chunk["truth"]
    true_pd = np.where(apps["treatment"] == 1, truth["pd_treated"], truth["pd_control"])
    assert 0.75 <= roc_auc_score(apps["defaulted"], true_pd) <= 0.90


def test_intervention_effect_is_small_real_and_heterogeneous(chunk):
    uplift = chunk["truth"]["true_uplift"]
    assert 0.005 < uplift.mean() < 0.05
    assert uplift.std() > uplift.mean()
    assert (uplift > 0.05).mean() > 0.05, "a segment clearly helped"
    assert (uplift < -0.01).mean() > 0.02, "a few harmed"
    assert (uplift.abs() < 0.01).mean() > 0.3, "near zero for many"


def test_experiment_is_randomised_and_history_is_confounded(chunk):
    apps, truth = chunk["applications"], chunk["truth"]
    exp = apps["cohort"] == "experiment"
    assert (apps.loc[exp, "propensity"] == 0.5).all()
    hist_p = apps.loc[~exp, "propensity"]
    assert hist_p.between(0.05, 0.95).all() and hist_p.std() > 0.15
    # the old policy treated risky applicants: the treated have higher untreated risk
    treated = apps["treatment"] == 1
    assert truth.loc[~exp & treated, "pd_control"].mean() > truth.loc[~exp & ~treated, "pd_control"].mean() + 0.05


def test_events_have_the_promised_shape(chunk):
    events, apps = chunk["events"], chunk["applications"]
    per_applicant = events.groupby("applicant_id").size()
    assert 10 < per_applicant.median() < 300
    assert set(events["event_type"]) == set(schema.EVENT_TYPES)
    money = events[events["event_type"] != "app_install"]
    assert 0.005 < money["amount"].isna().mean() < 0.05, "some missing amounts"
    assert money["amount"].max() > 20 * money["amount"].median(), "heavy tails"
    installs = events[events["event_type"] == "app_install"]
    assert installs["app_category"].notna().all() and set(installs["app_category"]) <= set(schema.APP_CATEGORIES)
    joined = events.merge(apps[["applicant_id", "application_time"]], on="applicant_id")
    assert (joined["event_time"] > joined["application_time"]).any(), "post-application events exist (leakage trap)"


def test_loan_history_has_repeat_borrowers(chunk):
    loans, apps = chunk["loans"], chunk["applications"]
    earlier = loans.merge(apps[["applicant_id", "application_time"]], on="applicant_id")
    earlier = earlier[earlier["due_time"] < earlier["application_time"]]
    assert 0.3 < earlier["applicant_id"].nunique() / len(apps) < 0.95
    assert 0.05 < (~earlier["repaid"]).mean() < 0.4


@pytest.mark.ray
def test_generation_on_ray_is_deterministic_and_writes_a_manifest(ray_cluster, tmp_path):
    spec = WorldSpec(applicants=2_500, seed=4, chunk_size=1_000)
    first = generate_world(spec, str(tmp_path / "a"), progress=False)
    second = generate_world(spec, str(tmp_path / "b"), progress=False)
    assert first.content_hash == second.content_hash
    assert first.chunks == 3
    assert first.tables["applications"].rows == 2_500
    manifest = read_manifest(str(tmp_path / "a"))
    assert manifest.content_hash == first.content_hash
    events = pq.read_table(tmp_path / "a" / "events")
    assert events.num_rows == manifest.tables["events"].rows
    other = generate_world(WorldSpec(applicants=2_500, seed=5, chunk_size=1_000), str(tmp_path / "c"), progress=False)
    assert other.content_hash != first.content_hash


def test_amounts_are_local_currency_at_the_schemas_exchange_rates(chunk):
    """The simulator prices loans in whole 5-USD steps at `schema.FX_PER_USD`, the rates the features use."""
    from tala_ray.features import definitions

    assert set(schema.FX_PER_USD) == set(schema.COUNTRIES)
    assert definitions.FX_PER_USD is schema.FX_PER_USD
    apps = chunk["applications"].merge(chunk["applicants"][["applicant_id", "country"]], on="applicant_id")
    usd = apps["amount"] / apps["country"].map(schema.FX_PER_USD)
    assert usd.between(5, 400).all() and np.allclose(usd / 5, np.round(usd / 5))
