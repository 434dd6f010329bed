"""Input contracts of the raw tables: schema checks and per-row quarantine reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from tala_ray.data import schema
from tala_ray.data.validation import SchemaMismatchError, check_schema, conform, split_valid

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
