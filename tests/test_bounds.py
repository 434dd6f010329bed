"""The defensible ranges of the raw tables' fields (`data/bounds.py`): every field has one, no row of
the synthetic world breaks one, the vectorised check finds the rows that do, and the JSON service
answers 422 naming the field and the bound instead of deciding (no Ray)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from tala_ray.data import bounds, schema, validation
from tala_ray.data.world import simulate_chunk

DAY_MS = 86_400_000
RAW_TABLES = ("applicants", "applications", "events", "loans")


def unbounded_fields() -> list[str]:
    """Numeric and time fields of the raw tables (other than ids and flags) without a bound."""
    bounded = {(b.table, b.field) for b in bounds.BOUNDS}
    missing = []
    for table in RAW_TABLES:
        for field in schema.TABLES[table]:
            numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
            if (numeric or pa.types.is_timestamp(field.type)) and not field.name.endswith("_id"):
                if (table, field.name) not in bounded:
                    missing.append(f"{table}.{field.name}")
    return missing


def test_every_numeric_and_time_field_has_a_finite_documented_bound():
    assert unbounded_fields() == []
    for bound in bounds.BOUNDS:
        assert bound.field in schema.TABLES[bound.table].names, bound
        assert bound.why and bound.below and bound.above, bound
        assert math.isfinite(bound.low), bound
        assert math.isfinite(bound.high) or (bound.kind == "interval" and bound.joined), bound
        assert bound.kind == "number" or not (bound.low_exclusive or bound.high_exclusive), bound
    assert len({(b.table, b.field, b.kind) for b in bounds.BOUNDS}) == len(bounds.BOUNDS)


@pytest.mark.parametrize("seed", [3, 11])
def test_no_row_of_a_simulated_world_breaks_a_bound(seed):
    """The demo's and the replays' data: past times, every amount, price and age the simulator draws."""
    tables = simulate_chunk(seed, 0, 0, 4_000)
    for table in RAW_TABLES:
        good, bad = validation.split_valid(table, validation.conform(table, tables[table]))
        assert bad.num_rows == 0, bad.slice(0, 3).to_pylist()
        assert good.num_rows == tables[table].num_rows
    good, bad = validation.split_joined(tables["applications"], tables["applicants"])
    assert bad.num_rows == 0 and good.num_rows == tables["applications"].num_rows


def test_problems_names_each_broken_bound_and_its_rows():
    now = bounds.clock_ms()
    columns = {
        "disbursed_time": np.array([now - 90 * DAY_MS, now - 10 * DAY_MS, now + DAY_MS, np.nan]),
        "due_time": np.array([now - 60 * DAY_MS, now - 11 * DAY_MS, now + 2 * DAY_MS, now]),
        "amount": np.array([500.0, np.inf, 1e6, np.nan]),  # NaN: missing, not out of range
        "days_late": np.array([0.0, -1.0, 3.0, 1e9]),
    }
    found = {(p.bound.field, p.reason): p.rows.tolist() for p in bounds.problems("loans", columns, now)}
    assert found == {
        ("disbursed_time", "future_timestamp"): [2],
        ("due_time", "impossible_timestamp"): [1],
        ("amount", "amount_too_large"): [1, 2],
        ("days_late", "negative_days_late"): [1],
        ("days_late", "days_late_too_large"): [3],
    }
    problem = next(p for p in bounds.problems("loans", columns, now) if p.bound.field == "due_time")
    assert "0 to 365 days after disbursed_time" in problem.requirement
    # Columns a reader does not have are not checked; the joined bound needs the applicant's signup time.
    assert bounds.problems("applications", {"amount": np.array([1.0])}, now) == []
    joined = {"application_time": np.array([now - DAY_MS]), "signup_time": np.array([now])}
    assert [p.reason for p in bounds.problems("applications", joined, now)] == ["application_before_signup"]


def test_pydantic_constraints_come_from_the_bounds():
    amount = bounds.bound("applications", "amount")
    assert amount.constraints() == {"gt": 0, "le": amount.high, "allow_inf_nan": False}
    assert bounds.bound("applications", "term_days").constraints() == {"ge": 1, "le": 365}
    with pytest.raises(KeyError, match="no number bound for events.event_time"):
        bounds.bound("events", "event_time").constraints()


# --- the in-process JSON service (FastAPI TestClient): a 422 naming the field and bound, not a decision ---


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The in-process decision app over a small registry: a logistic credit model and a T-learner
    trained on 1,500 simulated applications."""
    from fastapi.testclient import TestClient

    from tala_ray.core.registry import ArtifactMetadata, Registry
    from tala_ray.features.definitions import compute_features, feature_set_version
    from tala_ray.models.credit import LogisticCreditModel
    from tala_ray.models.uplift import TLearnerUplift
    from tala_ray.serving.inprocess import create_app

    world = {name: t.to_pandas() for name, t in simulate_chunk(21, 0, 0, 1_500).items()}
    apps = world["applications"]
    features = compute_features(apps, world["applicants"], world["events"], world["loans"])
    names = [c for c in features.columns if c != "application_id"]
    registry, fsv = Registry(str(tmp_path_factory.mktemp("registry"))), feature_set_version()
    credit = LogisticCreditModel(C=1.0).fit(features[names], apps["defaulted"].to_numpy())
    meta = ArtifactMetadata(kind="credit", family="logistic", feature_set_version=fsv, feature_names=names)
    registry.set_alias("credit_pd", "champion", registry.register("credit_pd", credit.to_files(), meta).version)
    uplift = TLearnerUplift(nuisance_n_estimators=20, cv=2).fit(
        1 - apps["defaulted"].to_numpy(), apps["treatment"].to_numpy(), X=features[names]
    )
    meta = ArtifactMetadata(kind="uplift", family=uplift.family, feature_set_version=fsv, feature_names=names)
    registry.set_alias("uplift", "champion", registry.register("uplift", uplift.to_files(), meta).version)
    with TestClient(create_app(registry=registry.uri)) as test_client:
        yield test_client, world


def replayed(world, n: int = 20) -> list[dict]:
    from tala_ray.traffic.replay import request_payload

    rows = world["applications"].sample(n, random_state=4)
    return [request_payload(world, row, include_future=i % 2 == 0) for i, (_, row) in enumerate(rows.iterrows())]


def test_the_service_decides_every_replayed_request_and_refuses_out_of_range_ones(client):
    test_client, world = client
    bodies = replayed(world)
    answer = test_client.post("/v1/decisions/batch", json={"applications": bodies})
    assert answer.status_code == 200 and len(answer.json()["decisions"]) == len(bodies)
    body = bodies[0]
    cases = {
        "signup in 1900": (
            {**body, "applicant": {**body["applicant"], "signup_time": "1900-01-01T00:00:00+00:00"}},
            ["body", "applicant", "signup_time"],
            "2007-01-01",
        ),
        "application in 9999": (
            {**body, "application": {**body["application"], "application_time": "9999-01-01T00:00:00+00:00"}},
            ["body", "application", "application_time"],
            "clock",
        ),
        "amount 1e12": (
            {**body, "application": {**body["application"], "amount": 1e12}},
            ["body", "application", "amount"],
            "650000",
        ),
        "event in 2100": (
            {**body, "events": [{"event_time": "2100-01-01T00:00:00", "event_type": "mm_in", "amount": 5.0}]},
            ["body", "events", 0, "event_time"],
            "clock",
        ),
    }
    for name, (payload, loc, bound) in cases.items():
        answer = test_client.post("/v1/decisions", json=payload)
        assert answer.status_code == 422, (name, answer.text)
        [error] = answer.json()["detail"]
        assert error["loc"] == loc and bound in error["msg"], (name, error)
    batch = test_client.post("/v1/decisions/batch", json={"applications": [body, cases["signup in 1900"][0]]})
    assert batch.status_code == 422
    assert [e["loc"] for e in batch.json()["detail"]] == [["body", "applications", 1, "applicant", "signup_time"]]
