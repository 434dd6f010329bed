"""Input contracts of the raw tables: schema checks and per-row quarantine reasons."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from tala_ray.data import schema
from tala_ray.data.validation import SchemaMismatchError, check_schema, conform, split_joined, split_valid

T = datetime(2025, 3, 1, tzinfo=UTC)


def events(rows: list[dict]) -> pa.Table:
    base = {
        "event_id": 1,
        "applicant_id": 1,
        "event_time": T,
        "event_type": "mm_in",
        "amount": 10.0,
        "app_category": None,
    }
    nullable = pa.schema([f.with_nullable(True) for f in schema.EVENTS])
    return pa.Table.from_pylist([{**base, **r} for r in rows], schema=nullable)


def test_each_bad_event_gets_the_first_reason_it_breaks():
    batch = events(
        [
            {},
            {"amount": None},  # missing amounts are allowed (the world has ~2%)
            {"event_type": "app_install", "amount": None, "app_category": "betting"},
            {"amount": -3.0},
            {"event_type": "lottery"},
            {"event_type": None},
            {"event_time": datetime(1960, 1, 1, tzinfo=UTC)},
            {"event_time": None},
            {"applicant_id": None, "amount": -1.0},
            {"event_type": "app_install", "amount": None, "app_category": "crypto"},
        ]
    )
    good, bad = split_valid("events", batch)
    assert good.num_rows == 3
    assert bad.column("reason").to_pylist() == [
        "negative_amount",
        "unknown_event_type",
        "unknown_event_type",
        "impossible_timestamp",
        "missing_time",
        "missing_id",
        "unknown_app_category",
    ]


def test_loans_due_before_disbursal_and_applications_without_amount_are_bad():
    nullable = pa.schema([f.with_nullable(True) for f in schema.LOANS])
    loans = pa.Table.from_pylist(
        [
            {
                "loan_id": 1,
                "applicant_id": 1,
                "disbursed_time": T,
                "due_time": T + timedelta(days=30),
                "amount": 5.0,
                "repaid": True,
                "days_late": 0,
            },
            {
                "loan_id": 2,
                "applicant_id": 1,
                "disbursed_time": T,
                "due_time": T - timedelta(days=1),
                "amount": 5.0,
                "repaid": True,
                "days_late": 0,
            },
            {
                "loan_id": 3,
                "applicant_id": 1,
                "disbursed_time": T,
                "due_time": T,
                "amount": 5.0,
                "repaid": True,
                "days_late": -2,
            },
        ],
        schema=nullable,
    )
    assert split_valid("loans", loans)[1].column("reason").to_pylist() == ["impossible_timestamp", "negative_days_late"]
    apps = pa.Table.from_pylist(
        [
            {
                "application_id": 1,
                "applicant_id": 1,
                "application_time": T,
                "amount": 0.0,
                "term_days": 30,
                "cohort": "experiment",
                "treatment": 0,
                "propensity": 0.5,
                "defaulted": 0,
            }
        ],
        schema=pa.schema([f.with_nullable(True) for f in schema.APPLICATIONS]),
    )
    assert split_valid("applications", apps)[1].column("reason").to_pylist() == ["non_positive_amount"]


def test_schema_check_names_table_and_column():
    with pytest.raises(SchemaMismatchError, match="table 'events': required column 'event_type' is missing"):
        check_schema("events", pa.schema([f for f in schema.EVENTS if f.name != "event_type"]))
    wrong = pa.schema([f if f.name != "amount" else pa.field("amount", pa.string()) for f in schema.EVENTS])
    with pytest.raises(SchemaMismatchError, match="table 'events': column 'amount' has type string, expected double"):
        check_schema("events", wrong)


def test_compatible_types_are_conformed_to_the_contract():
    loose = pa.table(
        {
            "event_id": pa.array([1], pa.int32()),
            "applicant_id": pa.array([1], pa.int32()),
            "event_time": pa.array([T.replace(tzinfo=None)], pa.timestamp("us")),
            "event_type": pa.array(["mm_out"]).dictionary_encode(),
            "amount": pa.array([5], pa.int64()),
            "app_category": pa.array([None], pa.string()),
            "extra": pa.array(["ignored"]),
        }
    )
    check_schema("events", loose.schema)
    conformed = conform("events", loose)
    assert conformed.schema.names == schema.EVENTS.names
    assert conformed.column("event_time").type == schema.TS and conformed.column("amount").type == pa.float64()
    assert split_valid("events", conformed)[0].num_rows == 1


# Out-of-range rows are quarantined with a reason code and a detail naming the field and the bound (issue 17).

NOW = datetime.now(UTC)
GOOD = {
    "applicants": {
        "applicant_id": 1,
        "country": "KE",
        "signup_time": T - timedelta(days=100),
        "device_os": "android",
        "device_price_usd": 80.0,
        "device_age_months": 3,
    },
    "applications": {
        "application_id": 1,
        "applicant_id": 1,
        "application_time": T,
        "amount": 2600.0,
        "term_days": 30,
        "cohort": "experiment",
        "treatment": 0,
        "propensity": 0.5,
        "defaulted": 0,
    },
    "events": {
        "event_id": 1,
        "applicant_id": 1,
        "event_time": T - timedelta(days=3),
        "event_type": "mm_in",
        "amount": 1300.0,
        "app_category": None,
    },
    "loans": {
        "loan_id": 1,
        "applicant_id": 1,
        "disbursed_time": T - timedelta(days=60),
        "due_time": T - timedelta(days=30),
        "amount": 500.0,
        "repaid": True,
        "days_late": 0,
    },
}


def rows(table: str, changes: list[dict]) -> pa.Table:
    nullable = pa.schema([f.with_nullable(True) for f in schema.TABLES[table]])
    return pa.Table.from_pylist([{**GOOD[table], **change} for change in changes], schema=nullable)


OUT_OF_RANGE_ROWS = [
    ("applicants", {"signup_time": datetime(1900, 1, 1, tzinfo=UTC)}, "impossible_timestamp", "2007-01-01"),
    ("applicants", {"signup_time": NOW + timedelta(days=1)}, "future_timestamp", "clock"),
    ("applicants", {"device_price_usd": math.inf}, "device_price_too_high", "10000"),
    ("applicants", {"device_price_usd": math.nan}, "not_a_number", "device_price_usd"),
    ("applicants", {"device_price_usd": -1.0}, "negative_device_price", "0"),
    ("applicants", {"device_age_months": -1}, "negative_device_age", "0"),
    ("applicants", {"device_age_months": 5000}, "device_too_old", "240"),
    ("applications", {"application_time": datetime(9999, 1, 1, tzinfo=UTC)}, "future_timestamp", "clock"),
    ("applications", {"application_time": datetime(2006, 12, 31, tzinfo=UTC)}, "impossible_timestamp", "2007-01-01"),
    ("applications", {"amount": float("1e309")}, "amount_too_large", "650000"),
    ("applications", {"amount": math.nan}, "not_a_number", "amount"),
    ("applications", {"amount": 1e12}, "amount_too_large", "650000"),
    ("applications", {"amount": None}, "missing_value", "amount"),
    ("applications", {"term_days": 400}, "term_too_long", "365"),
    ("events", {"amount": math.nan}, "not_a_number", "amount"),
    ("events", {"amount": -math.inf}, "negative_amount", "0"),
    ("events", {"amount": 1e15}, "amount_too_large", "6500000"),
    ("events", {"event_time": NOW + timedelta(days=1)}, "future_timestamp", "clock"),
    ("events", {"event_time": datetime(2100, 1, 1, tzinfo=UTC)}, "future_timestamp", "clock"),
    ("loans", {"disbursed_time": datetime(2100, 1, 1, tzinfo=UTC)}, "future_timestamp", "clock"),
    ("loans", {"due_time": T - timedelta(days=61)}, "impossible_timestamp", "disbursed_time"),
    ("loans", {"due_time": T + timedelta(days=400)}, "loan_term_too_long", "365"),
    ("loans", {"amount": math.nan}, "not_a_number", "amount"),
    ("loans", {"amount": 1e10}, "amount_too_large", "650000"),
    ("loans", {"days_late": 36_500}, "days_late_too_large", "730"),
]


@pytest.mark.parametrize(("table", "change", "reason", "bound"), OUT_OF_RANGE_ROWS)
def test_an_out_of_range_row_is_quarantined_naming_the_field_and_bound(table, change, reason, bound):
    good, bad = split_valid(table, rows(table, [{}, change, {}]))
    assert good.num_rows == 2
    assert bad.column("reason").to_pylist() == [reason]
    detail = bad.column("detail")[0].as_py()
    assert f"{table}.{next(iter(change))}" in detail and bound in detail, detail


def test_an_application_before_its_applicants_signup_or_without_applicant_is_quarantined():
    applicants = rows("applicants", [{"applicant_id": 1}, {"applicant_id": 2, "signup_time": T + timedelta(days=1)}])
    applications = rows(
        "applications",
        [
            {"application_id": 1, "applicant_id": 1},
            {"application_id": 2, "applicant_id": 2},
            {"application_id": 3, "applicant_id": 3},
        ],
    )
    good, bad = split_joined(applications, applicants)
    assert good.column("application_id").to_pylist() == [1]
    assert bad.column("application_id").to_pylist() == [2, 3]
    assert bad.column("reason").to_pylist() == ["application_before_signup", "missing_applicant"]
    assert "applications.application_time" in bad.column("detail")[0].as_py()


def test_an_applicant_without_device_details_is_good():
    missing = {"device_os": None, "device_price_usd": None, "device_age_months": None}
    good, bad = split_valid("applicants", rows("applicants", [missing]))
    assert good.num_rows == 1 and bad.num_rows == 0
