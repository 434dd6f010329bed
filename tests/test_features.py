"""Feature definitions: contract, hand-checked values and point-in-time correctness (no Ray)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tala_ray.data import bounds, schema
from tala_ray.data.generate import WorldSpec
from tala_ray.data.world import simulate_chunk
from tala_ray.features.definitions import FEATURES, compute_features, feature_set_version
from tala_ray.features.online import ApplicationRequest
from tala_ray.features.timeutil import datetime_ms, epoch_ms
from tala_ray.traffic.replay import request_payload

DAY = pd.Timedelta(days=1)
APP_TIME = pd.Timestamp("2025-06-01T12:00:00Z")


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    """A 600-applicant world simulated in-process (no Ray needed)."""
    spec = WorldSpec(applicants=600, seed=3)
    tables = simulate_chunk(spec.seed, 0, 0, spec.applicants)
    return {name: table.to_pandas() for name, table in tables.items() if name != "truth"}


def features_of(world: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return compute_features(world["applications"], world["applicants"], world["events"], world["loans"])


def one_applicant(events: list[dict], loans: list[dict] | None = None, country: str = "KE") -> pd.Series:
    """Features of a single hand-built application at APP_TIME."""
    applicants = pd.DataFrame(
        [
            {
                "applicant_id": 1,
                "country": country,
                "signup_time": APP_TIME - 100 * DAY,
                "device_os": "android",
                "device_price_usd": 80.0,
                "device_age_months": 3,
            }
        ]
    )
    applications = pd.DataFrame(
        [{"application_id": 9, "applicant_id": 1, "application_time": APP_TIME, "amount": 2600.0, "term_days": 30}]
    )
    event_columns = ["applicant_id", "event_time", "event_type", "amount", "app_category"]
    loan_columns = ["applicant_id", "disbursed_time", "due_time", "amount", "repaid", "days_late"]
    frame = compute_features(
        applications,
        applicants,
        pd.DataFrame([{"applicant_id": 1, "app_category": None, **e} for e in events], columns=event_columns),
        pd.DataFrame([{"applicant_id": 1, **loan} for loan in loans or []], columns=loan_columns),
    )
    return frame.iloc[0]


def test_output_has_one_row_per_application_and_the_declared_columns(world):
    features = features_of(world)
    assert list(features.columns) == ["application_id", *[f.name for f in FEATURES]]
    assert features["application_id"].tolist() == world["applications"]["application_id"].tolist()
    for definition in FEATURES:
        column = features[definition.name]
        if definition.dtype == "float64":
            assert column.dtype == np.float64, definition.name
        else:
            assert pd.api.types.is_string_dtype(column), definition.name
    assert len({f.name for f in FEATURES}) == len(FEATURES)
    assert all(f.description for f in FEATURES)


def test_feature_set_version_is_a_stable_hash():
    assert feature_set_version() == feature_set_version()
    assert feature_set_version().startswith("fs-") and len(feature_set_version()) == 19


def test_hand_built_applicant_gives_the_expected_values():
    events = [
        {"event_time": APP_TIME - 5 * DAY, "event_type": "mm_in", "amount": 13_000.0},  # 100 USD in KE
        {"event_time": APP_TIME - 40 * DAY, "event_type": "mm_in", "amount": 26_000.0},
        {"event_time": APP_TIME - 10 * DAY, "event_type": "mm_out", "amount": 6_500.0},
        {"event_time": APP_TIME - 20 * DAY, "event_type": "bill_pay", "amount": 1_300.0},
        {"event_time": APP_TIME - 60 * DAY, "event_type": "app_install", "amount": None, "app_category": "betting"},
        {"event_time": APP_TIME - 200 * DAY, "event_type": "mm_in", "amount": 1e9},  # beyond the 180-day lookback
    ]
    loans = [
        {
            "disbursed_time": APP_TIME - 90 * DAY,
            "due_time": APP_TIME - 60 * DAY,
            "amount": 1300.0,
            "repaid": True,
            "days_late": 3,
        },
        {
            "disbursed_time": APP_TIME - 40 * DAY,
            "due_time": APP_TIME - 10 * DAY,
            "amount": 1300.0,
            "repaid": False,
            "days_late": 90,
        },
    ]
    row = one_applicant(events, loans)
    assert row["inflow_sum_7d_usd"] == pytest.approx(100.0)
    assert row["inflow_sum_30d_usd"] == pytest.approx(100.0)
    assert row["inflow_sum_90d_usd"] == pytest.approx(300.0)
    assert row["inflow_count_90d"] == 2
    assert row["outflow_sum_30d_usd"] == pytest.approx(50.0)
    assert row["spend_ratio_log_90d"] == pytest.approx(np.log(70 / 320))
    assert row["bill_count_30d"] == 1 and row["betting_installs"] == 1 and row["betting_installs_90d"] == 1
    assert row["days_since_last_inflow"] == pytest.approx(5.0)
    assert row["loan_amount_usd"] == pytest.approx(20.0)
    assert row["loan_to_monthly_inflow_log"] == pytest.approx(np.log(25 / 105))
    assert row["tenure_days"] == pytest.approx(100.0)
    # The first loan was repaid 3 days late, well before; the second is past due but not yet written off.
    assert row["prior_loan_count"] == 2 and row["repaid_loan_count"] == 1 and row["defaulted_loan_count"] == 0
    assert row["overdue_loan_count"] == 1 and row["share_loans_repaid"] == 1.0 and row["mean_days_late_repaid"] == 3
    assert row["country"] == "KE"


def test_an_applicant_without_history_gets_zero_counts_and_missing_ratios():
    row = one_applicant([])
    assert row["inflow_sum_90d_usd"] == 0 and row["prior_loan_count"] == 0
    assert np.isnan(row["share_loans_repaid"]) and np.isnan(row["days_since_last_event"])


def plant_future(world: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Copy of the world with extra events and loans at and after each application time."""
    apps = world["applications"][["applicant_id", "application_time"]]
    planted_events = []
    for offset in (pd.Timedelta(0), pd.Timedelta(milliseconds=1), 3 * DAY, 45 * DAY):
        for kind, category in (
            ("mm_in", None),
            ("mm_out", None),
            ("bill_pay", None),
            ("airtime", None),
            ("app_install", "betting"),
        ):
            planted_events.append(
                pd.DataFrame(
                    {
                        "event_id": -1 - np.arange(len(apps)),
                        "applicant_id": apps["applicant_id"],
                        "event_time": apps["application_time"] + offset,
                        "event_type": kind,
                        "amount": None if kind == "app_install" else 1e6,
                        "app_category": category,
                    }
                )
            )
    planted_loans = pd.DataFrame(
        {
            "loan_id": -1 - np.arange(len(apps)),
            "applicant_id": apps["applicant_id"],
            "disbursed_time": apps["application_time"],
            "due_time": apps["application_time"] + 30 * DAY,
            "amount": 1e6,
            "repaid": False,
            "days_late": 90,
        }
    )
    # Outcomes of earlier loans not settled by the application time are unknown then: flip them.
    loans = world["loans"].merge(apps, on="applicant_id")
    settles = loans["due_time"] + pd.to_timedelta(loans["days_late"], unit="D")
    unsettled = (loans["disbursed_time"] < loans["application_time"]) & (settles >= loans["application_time"])
    flipped = world["loans"].copy()
    flipped.loc[unsettled.to_numpy(), "repaid"] = ~flipped.loc[unsettled.to_numpy(), "repaid"]
    events = pd.concat([world["events"], *planted_events], ignore_index=True).astype(world["events"].dtypes.to_dict())
    return {**world, "events": events, "loans": pd.concat([flipped, planted_loans], ignore_index=True)}


def test_events_and_loans_at_or_after_the_application_time_change_nothing(world):
    planted = plant_future(world)
    assert len(planted["events"]) > len(world["events"]) + 5 * len(world["applications"])
    pd.testing.assert_frame_equal(features_of(planted), features_of(world), check_exact=True)


def test_the_point_in_time_check_would_catch_a_leak(world):
    """The same planting one millisecond before the application time does change the features."""
    shifted = {
        **world,
        "applications": world["applications"].assign(
            application_time=world["applications"]["application_time"] + pd.Timedelta(milliseconds=2)
        ),
    }
    planted = plant_future(world)
    changed = features_of({**planted, "applications": shifted["applications"]})
    assert not changed["inflow_sum_7d_usd"].equals(features_of(shifted)["inflow_sum_7d_usd"])


def test_an_applicant_s_several_applications_get_the_features_each_gets_alone(world):
    """Applications sharing an applicant (each event joins several) give exactly what each batch gives alone."""
    first = world["applications"].head(40)
    earlier = first.assign(
        application_id=first["application_id"] + 10**9, application_time=first["application_time"] - 45 * DAY
    )
    together = features_of({**world, "applications": pd.concat([first, earlier], ignore_index=True)})
    alone = pd.concat([features_of({**world, "applications": apps}) for apps in (first, earlier)], ignore_index=True)
    pd.testing.assert_frame_equal(together, alone, check_exact=True)


def test_the_order_of_event_and_loan_rows_changes_nothing_but_rounding(world):
    shuffled = {**world, **{name: world[name].sample(frac=1, random_state=2) for name in ("events", "loans")}}
    pd.testing.assert_frame_equal(features_of(shuffled), features_of(world), check_exact=False, rtol=1e-9, atol=1e-9)


def test_an_application_without_its_applicant_or_duplicate_applicants_are_refused(world):
    orphan = world["applications"].head(3).assign(applicant_id=-1)
    with pytest.raises(ValueError, match="applications: an applicant_id has no row in applicants"):
        compute_features(orphan, world["applicants"], world["events"], world["loans"])
    doubled = pd.concat([world["applicants"], world["applicants"].head(1)])
    with pytest.raises(ValueError, match="applicants: applicant_id is not unique"):
        compute_features(world["applications"], doubled, world["events"], world["loans"])


@pytest.mark.parametrize(
    "value",
    [
        datetime(2025, 6, 1, 12, 0, 0, 999_999, tzinfo=UTC),
        datetime(2025, 6, 1, 14, 30, 0, 1_500, tzinfo=timezone(timedelta(hours=2, minutes=30))),
        datetime(2025, 6, 1, 3, 0, 0, 500),  # naive: taken as UTC
        datetime(1999, 12, 31, 23, 59, 59, 999_000, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_a_request_datetime_converts_to_the_same_epoch_ms_as_the_batch_path(value):
    """The online path converts each datetime with integer arithmetic; the batch path with pandas."""
    assert datetime_ms(value) == epoch_ms(pd.Series([value]))[0]


# The online request models refuse out-of-range values with an error naming the field and the bound
# (issue 17: a signup in 1900, an application in 9999 or an infinite device price gave confident approvals).


def valid_request() -> dict:
    """A valid request: an applicant of 2025 with two events and two loans, all in the past."""
    return {
        "applicant": {
            "country": "KE",
            "signup_time": "2025-01-10T08:00:00+00:00",
            "device_os": "android",
            "device_price_usd": 80.0,
            "device_age_months": 3,
        },
        "application": {"amount": 2600.0, "term_days": 30, "application_time": "2025-06-01T12:00:00+03:00"},
        "events": [
            {"event_time": "2025-05-01T10:00:00", "event_type": "mm_in", "amount": 1300.0},  # naive: UTC
            {"event_time": "2025-05-02T10:00:00+00:00", "event_type": "app_install", "app_category": "betting"},
        ],
        "loans": [
            {
                "disbursed_time": "2025-03-01T00:00:00+00:00",
                "due_time": "2025-03-31T00:00:00+00:00",
                "amount": 500.0,
                "repaid": True,
                "days_late": 2,
            },
            {
                "disbursed_time": "2025-04-01T00:00:00",
                "due_time": "2025-04-15T00:00:00+00:00",
                "amount": 800.0,
                "repaid": True,
                "days_late": 0,
            },
        ],
    }


def request_json(path: tuple, raw: str) -> str:
    """`valid_request()` as JSON with the value at `path` replaced by the raw JSON text `raw`."""
    body = valid_request()
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = "__RAW__"
    return json.dumps(body).replace('"__RAW__"', raw)


def soon(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


OUT_OF_RANGE = {
    "signup in 1900": (("applicant", "signup_time"), '"1900-01-01T00:00:00Z"', "2007-01-01"),
    "application in 9999": (("application", "application_time"), '"9999-01-01T00:00:00Z"', "clock"),
    "infinite device price": (("applicant", "device_price_usd"), "Infinity", "finite"),
    "device price of a house": (("applicant", "device_price_usd"), "2e6", "less than or equal to 10000"),
    "negative device age": (("applicant", "device_age_months"), "-1", "greater than or equal to 0"),
    "device older than mobile phones": (("applicant", "device_age_months"), "5000", "less than or equal to 240"),
    "amount 1e309": (("application", "amount"), "1e309", "finite"),
    "amount +Infinity": (("application", "amount"), '"+Infinity"', "finite"),
    "amount NaN": (("application", "amount"), "NaN", "finite"),
    "amount 1e12": (("application", "amount"), "1e12", "less than or equal to 650000"),
    "event amount NaN": (("events", 0, "amount"), "NaN", "finite"),
    "event amount -Infinity": (("events", 0, "amount"), "-Infinity", "finite"),
    "event amount 1e15": (("events", 0, "amount"), "1e15", "less than or equal to 6500000"),
    "loan amount NaN": (("loans", 1, "amount"), "NaN", "finite"),
    "days late for a century": (("loans", 0, "days_late"), "36500", "less than or equal to 730"),
    "event in 2100": (("events", 1, "event_time"), '"2100-01-01T00:00:00+00:00"', "clock"),
    "event in 1990": (("events", 0, "event_time"), '"1990-01-01T00:00:00"', "2007-01-01"),
    "event ten minutes ahead": (("events", 1, "event_time"), "SOON_10", "clock"),  # timed when the test runs
    "loan disbursed in 9999": (
        ("loans", 0, "disbursed_time"),
        '"9999-12-31T00:00:00+00:00"',
        "clock",
    ),  # and due before
    "due before disbursed": (("loans", 0, "due_time"), '"2025-02-28T00:00:00+00:00"', "disbursed_time"),
    "due after ten years": (("loans", 1, "due_time"), '"2035-04-01T00:00:00+00:00"', "365 days"),
    "application before signup": (("application", "application_time"), '"2025-01-01T00:00:00+00:00"', "signup_time"),
}


@pytest.mark.parametrize("case", list(OUT_OF_RANGE))
def test_an_out_of_range_request_value_is_refused_naming_the_field_and_bound(case):
    path, raw, bound = OUT_OF_RANGE[case]
    raw = f'"{soon(10)}"' if raw == "SOON_10" else raw
    with pytest.raises(ValidationError) as caught:
        ApplicationRequest.model_validate_json(request_json(path, raw))
    errors = caught.value.errors(include_url=False)
    also = [("loans", 0, "due_time")] if case == "loan disbursed in 9999" else []
    assert [e["loc"] for e in errors] == [path, *also], errors
    assert bound in errors[0]["msg"], errors[0]["msg"]


def test_valid_requests_pass_with_naive_aware_and_nearly_now_times():
    ApplicationRequest.model_validate(valid_request())
    ApplicationRequest.model_validate_json(request_json(("application", "application_time"), f'"{soon(1)}"'))
    ApplicationRequest.model_validate_json(request_json(("applicant", "signup_time"), '"2007-01-01T00:00:00"'))
    ApplicationRequest.model_validate_json(request_json(("events", 1, "event_time"), f'"{soon(-60 * 24 * 365)}"'))


def test_every_application_of_a_simulated_world_is_a_valid_request(world):
    """The bounds refuse none of the world's requests, future records included (the demo, replays)."""
    applications = world["applications"].sample(200, random_state=1)
    for _, row in applications.iterrows():
        ApplicationRequest.model_validate(request_payload(world, row, include_future=True))


def test_the_request_vocabularies_and_ranges_are_the_schemas_and_bounds():
    properties = ApplicationRequest.model_json_schema()["$defs"]
    assert properties["ApplicantInfo"]["properties"]["country"]["enum"] == list(schema.COUNTRIES)
    assert properties["RawEvent"]["properties"]["event_type"]["enum"] == list(schema.EVENT_TYPES)
    assert properties["RawEvent"]["properties"]["app_category"]["anyOf"][0]["enum"] == list(schema.APP_CATEGORIES)
    assert properties["ApplicantInfo"]["properties"]["device_os"]["anyOf"][0]["enum"] == list(schema.DEVICE_OS)
    amount = properties["ApplicationInfo"]["properties"]["amount"]
    assert (amount["exclusiveMinimum"], amount["maximum"]) == (0, bounds.bound("applications", "amount").high)
