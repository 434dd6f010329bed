"""The Arrow IPC batch body: parity with the JSON path (raw columns and features), accepted variants,
and every validation rule with its location (no Ray)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError

from tala_ray.core.errors import UserError
from tala_ray.data import bounds
from tala_ray.data.world import simulate_chunk
from tala_ray.features.definitions import feature_columns
from tala_ray.features.online import MAX_EVENTS, MAX_LOANS, ApplicationRequest, request_columns
from tala_ray.serving.arrow_body import MAX_DETAILS, ArrowBodyError, TooManyApplicationsError, decode_batch
from tala_ray.serving.arrow_schema import REQUEST_SCHEMA
from tala_ray.traffic.arrow_encode import encode_payloads, payload_table, table_bytes
from tala_ray.traffic.replay import request_payload

LIMIT = 1_000


@pytest.fixture(scope="module")
def payloads() -> list[dict]:
    """Requests for 40 applications of a small simulated world, plus edge cases: no history, no device."""
    world = {name: table.to_pandas() for name, table in simulate_chunk(3, 0, 0, 200).items() if name != "truth"}
    rows = [row for _, row in world["applications"].head(40).iterrows()]
    made = [request_payload(world, row, include_future=i % 5 == 0) for i, row in enumerate(rows)]
    bare = copy.deepcopy(made[1]) | {"events": [], "loans": []}
    bare["applicant"] |= {"device_os": None, "device_price_usd": None, "device_age_months": None}
    return [*made, bare]


def hand_payload(events: int = 3, loans: int = 2) -> dict:
    """A small valid request with `events` events and `loans` loans."""
    return {
        "applicant": {
            "country": "KE",
            "signup_time": "2025-01-10T08:00:00+00:00",
            "device_os": "android",
            "device_price_usd": 80.0,
            "device_age_months": 3,
        },
        "application": {"amount": 2600.0, "term_days": 30, "application_time": "2025-06-01T12:00:00+00:00"},
        "events": [
            {
                "event_time": f"2025-05-{1 + i % 28:02d}T10:00:00+00:00",
                "event_type": "mm_in",
                "amount": 100.0 + i,
                "app_category": None,
            }
            for i in range(events)
        ],
        "loans": [
            {
                "disbursed_time": "2025-03-01T00:00:00+00:00",
                "due_time": "2025-03-31T00:00:00+00:00",
                "amount": 500.0,
                "repaid": True,
                "days_late": i,
            }
            for i in range(loans)
        ],
    }


def json_columns(payloads: list[dict]) -> dict[str, dict[str, np.ndarray]]:
    return request_columns([ApplicationRequest.model_validate(payload) for payload in payloads])


def assert_same_tables(got: dict[str, dict[str, np.ndarray]], expected: dict[str, dict[str, np.ndarray]]) -> None:
    """Same tables, keys in the same order, same dtypes, values and missing positions."""
    assert list(got) == list(expected)
    for table, columns in expected.items():
        assert list(got[table]) == list(columns), table
        for name, want in columns.items():
            have = got[table][name]
            if isinstance(have, pd.Categorical):  # the events' strings: the same values, as codes
                assert table == "events" and want.dtype == object, (table, name)
                have = np.array([None if pd.isna(value) else value for value in have], dtype=object)
            assert have.dtype == want.dtype and have.shape == want.shape, (table, name, have.dtype, want.dtype)
            if want.dtype == object:
                assert have.tolist() == want.tolist(), (table, name)
            else:
                np.testing.assert_array_equal(have, want, err_msg=f"{table}.{name}")


def problems_of(body: bytes, max_applications: int = LIMIT) -> list[dict[str, Any]]:
    with pytest.raises(ArrowBodyError) as caught:
        decode_batch(body, max_applications)
    return caught.value.details


def with_column(table: pa.Table, name: str, array: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, array)


def test_decoded_tables_equal_the_json_path(payloads):
    body = encode_payloads(payloads)
    got = decode_batch(body, LIMIT)
    assert_same_tables(got, json_columns(payloads))
    assert len(got["events"]["event_time"]) > 1_000 and np.isnan(got["events"]["amount"]).any()
    assert got["events"]["app_category"].isna().any() and None in got["applicants"]["device_os"].tolist()


def test_features_are_identical_to_the_json_path(payloads):
    got = feature_columns(**decode_batch(encode_payloads(payloads), LIMIT))
    expected = feature_columns(**json_columns(payloads))
    assert list(got) == list(expected)
    for name, want in expected.items():
        np.testing.assert_array_equal(got[name], want, err_msg=name)


def test_encoded_body_has_the_request_schema(payloads):
    reader = pa.ipc.open_stream(encode_payloads(payloads[:3]))
    assert reader.schema.equals(REQUEST_SCHEMA) and reader.read_all().num_rows == 3


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(value: datetime) -> int:
    """Epoch microseconds of a datetime (naive = UTC)."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (aware - EPOCH) // timedelta(microseconds=1)


ODD_TIMES = [
    "2025-06-01T12:00:00.123987+03:00",  # sub-millisecond, east of UTC
    "2025-06-01T07:30:00.000999-05:30",
    "2025-06-01T12:00:00.5",  # naive: UTC
    "2025-06-01T00:00:00.000999+14:00",  # the day before in UTC, a fraction floored like datetime_ms
]


def test_encoded_times_with_offsets_fractions_or_no_zone_match_the_json_path():
    payloads = [hand_payload(events=1, loans=1) for _ in ODD_TIMES]
    for payload, text in zip(payloads, ODD_TIMES, strict=True):
        payload["applicant"]["signup_time"] = payload["events"][0]["event_time"] = text
        payload["loans"][0]["due_time"] = payload["application"]["application_time"] = text
    got = decode_batch(encode_payloads(payloads), LIMIT)
    assert_same_tables(got, json_columns(payloads))
    assert got["applications"]["application_time"][-1] == 1_748_685_600_000  # 2025-05-31T10:00:00Z


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "Africa/Nairobi", "America/Mexico_City"])
def test_timestamps_of_any_unit_and_zone_match_the_json_path(unit, tz):
    """Times given with an offset, naive (UTC), or finer than a millisecond convert as the JSON path does."""
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    micros = [epoch_us(datetime.fromisoformat(text)) for text in ODD_TIMES]
    values = [us * per_second // 1_000_000 for us in micros]  # floored to the unit
    texts = ODD_TIMES if unit != "s" else [(EPOCH + timedelta(seconds=v)).isoformat() for v in values]
    payloads = [hand_payload(events=1, loans=0) for _ in texts]
    for payload, text in zip(payloads, texts, strict=True):
        payload["events"][0]["event_time"] = payload["applicant"]["signup_time"] = text
        payload["application"]["application_time"] = "2025-06-02T00:00:00+00:00"  # after every sign-up
    times = pa.array(values, pa.timestamp(unit, tz="UTC")).cast(pa.timestamp(unit, tz=tz))
    n = len(texts)
    events = pa.ListArray.from_arrays(
        pa.array(range(n + 1), pa.int32()),
        pa.StructArray.from_arrays(
            [times, pa.array(["mm_in"] * n), pa.array([100.0] * n), pa.nulls(n, pa.string())],
            names=["event_time", "event_type", "amount", "app_category"],
        ),
    )
    table = with_column(with_column(payload_table(payloads), "signup_time", times), "events", events)
    got = decode_batch(table_bytes(table), LIMIT)
    assert_same_tables(got, json_columns(payloads))
    assert got["events"]["event_time"][-1] == 1_748_685_600_000  # floored to the unit, then to the ms


def test_liberal_variants_decode_to_the_same_tables(payloads):
    """Dictionary strings, narrow integers, integral floats, large lists, null lists, left-out optional
    columns, several record batches: all read as the canonical body."""
    sample = [copy.deepcopy(payload) for payload in payloads[:6]]
    sample[2]["events"] = []
    table = payload_table(sample)
    table = with_column(table, "country", table["country"].combine_chunks().dictionary_encode())
    table = with_column(table, "term_days", table["term_days"].cast(pa.int16()))
    table = with_column(table, "device_age_months", table["device_age_months"].cast(pa.float64()))
    table = with_column(table, "amount", table["amount"].cast(pa.float64()))
    events = table["events"].combine_chunks()
    null_at_2 = pa.array([i == 2 for i in range(len(events))])
    events = pa.LargeListArray.from_arrays(events.offsets.cast(pa.int64()), events.values, mask=null_at_2)
    table = with_column(table, "events", events)
    table = with_column(table, "device_os", table["device_os"].cast(pa.large_string()))
    batches = table.to_batches(max_chunksize=2)
    assert len(batches) == 3
    assert_same_tables(decode_batch(table_bytes(pa.Table.from_batches(batches)), LIMIT), json_columns(sample))


def test_event_strings_may_come_plain_or_as_dictionaries(payloads):
    """`encode_payloads` writes the events' strings as dictionaries; a client's plain strings
    decode to the same tables."""
    table = payload_table(payloads)
    item = table.schema.field("events").type.value_type
    assert pa.types.is_dictionary(item.field("event_type").type)
    plain_item = pa.struct(
        [pa.field(f.name, pa.string() if pa.types.is_dictionary(f.type) else f.type, f.nullable) for f in item]
    )
    plain = with_column(table, "events", table["events"].cast(pa.list_(pa.field("item", plain_item, nullable=False))))
    assert plain.schema.field("events").type.value_type.field("event_type").type == pa.string()
    assert_same_tables(decode_batch(table_bytes(plain), LIMIT), json_columns(payloads))
    assert_same_tables(decode_batch(table_bytes(table), LIMIT), json_columns(payloads))


def test_optional_columns_and_struct_fields_may_be_left_out():
    sample = [hand_payload(), hand_payload()]
    for payload in sample:
        payload["applicant"] = {k: v for k, v in payload["applicant"].items() if k == "country" or k == "signup_time"}
        payload["events"] = [{"event_time": e["event_time"], "event_type": e["event_type"]} for e in payload["events"]]
        payload["loans"] = []
    table = payload_table(sample).drop_columns(["device_os", "device_price_usd", "device_age_months", "loans"])
    events = table["events"].combine_chunks()
    slim_events = pa.StructArray.from_arrays(events.values.flatten()[:2], names=["event_time", "event_type"])
    slim = pa.ListArray.from_arrays(events.offsets, slim_events)
    body = table_bytes(with_column(table, "events", slim))
    assert_same_tables(decode_batch(body, LIMIT), json_columns(sample))


def set_path(payload: dict, path: tuple, value: Any) -> None:
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


# (path in the JSON payload, bad value, loc after the application index, message)
RULES = [
    (("applicant", "country"), "XX", ["applicant", "country"], "must be one of KE, PH, MX, IN"),
    (("applicant", "country"), None, ["applicant", "country"], "must not be null"),
    (("applicant", "signup_time"), None, ["applicant", "signup_time"], "must not be null"),
    (
        ("applicant", "device_os"),
        "windows",
        ["applicant", "device_os"],
        "must be one of android, ios, feature_phone",
    ),
    (
        ("applicant", "device_price_usd"),
        -0.5,
        ["applicant", "device_price_usd"],
        "must be at least 0 and at most 10000 (USD)",
    ),
    (
        ("applicant", "device_age_months"),
        -1,
        ["applicant", "device_age_months"],
        "must be at least 0 and at most 240 (months)",
    ),
    (
        ("application", "amount"),
        0.0,
        ["application", "amount"],
        "must be greater than 0 and at most 650000 (local currency)",
    ),
    (("application", "amount"), math.nan, ["application", "amount"], "must be a finite number"),
    (("application", "amount"), None, ["application", "amount"], "must not be null"),
    (("application", "term_days"), 0, ["application", "term_days"], "must be at least 1 and at most 365 (days)"),
    (("application", "term_days"), 366, ["application", "term_days"], "must be at least 1 and at most 365 (days)"),
    (("application", "term_days"), None, ["application", "term_days"], "must not be null"),
    (("application", "application_time"), None, ["application", "application_time"], "must not be null"),
    (
        ("events", 2, "amount"),
        -5.0,
        ["events", 2, "amount"],
        "must be at least 0 and at most 6500000 (local currency)",
    ),
    (
        ("events", 2, "event_type"),
        "gift",
        ["events", 2, "event_type"],
        "must be one of mm_in, mm_out, airtime, bill_pay, app_install",
    ),
    (("events", 1, "event_type"), None, ["events", 1, "event_type"], "must not be null"),
    (
        ("events", 0, "app_category"),
        "music",
        ["events", 0, "app_category"],
        "must be one of finance, betting, social, productivity, gaming",
    ),
    (("events", 2, "event_time"), None, ["events", 2, "event_time"], "must not be null"),
    (("loans", 1, "amount"), -1.0, ["loans", 1, "amount"], "must be at least 0 and at most 650000 (local currency)"),
    (("loans", 1, "amount"), None, ["loans", 1, "amount"], "must not be null"),
    (("loans", 0, "days_late"), -2, ["loans", 0, "days_late"], "must be at least 0 and at most 730 (days)"),
    (("loans", 0, "repaid"), None, ["loans", 0, "repaid"], "must not be null"),
    (("loans", 1, "disbursed_time"), None, ["loans", 1, "disbursed_time"], "must not be null"),
    (("loans", 1, "due_time"), None, ["loans", 1, "due_time"], "must not be null"),
]

RULE_IDS = [f"{'.'.join(map(str, path))}={value}" for path, value, _, _ in RULES]


@pytest.mark.parametrize(("path", "value", "loc", "msg"), RULES, ids=RULE_IDS)
def test_each_rule_names_the_row_and_field_like_the_json_models_reject_it(path, value, loc, msg):
    sample = [hand_payload(), hand_payload(), hand_payload()]
    set_path(sample[1], path, value)
    with pytest.raises(ValidationError):
        ApplicationRequest.model_validate(sample[1])
    with pytest.raises(ArrowBodyError) as caught:
        decode_batch(encode_payloads(sample), LIMIT)
    assert caught.value.details == [{"loc": ["body", "applications", 1, *loc], "msg": msg}]
    assert isinstance(caught.value, UserError) and caught.value.total == 1
    assert "body.applications.1." in str(caught.value)


# (path in the JSON payload, a value out of its range, loc after the application index, part of the message)
BOUNDS = [
    (("applicant", "signup_time"), "1900-01-01T00:00:00+00:00", ["applicant", "signup_time"], "2007-01-01"),
    (("application", "application_time"), "9999-01-01T00:00:00+00:00", ["application", "application_time"], "clock"),
    (
        ("application", "application_time"),
        "2024-01-01T00:00:00+00:00",
        ["application", "application_time"],
        "no earlier than the applicant's signup_time",
    ),
    (("applicant", "device_price_usd"), math.inf, ["applicant", "device_price_usd"], "must be a finite number"),
    (("applicant", "device_price_usd"), 1e6, ["applicant", "device_price_usd"], "at most 10000 (USD)"),
    (("applicant", "device_age_months"), 10**6, ["applicant", "device_age_months"], "at most 240 (months)"),
    (("application", "amount"), 1e12, ["application", "amount"], "at most 650000"),
    (("application", "amount"), -math.inf, ["application", "amount"], "must be a finite number"),
    (("events", 2, "event_time"), "2100-01-01T00:00:00", ["events", 2, "event_time"], "clock"),
    (("events", 2, "amount"), 1e12, ["events", 2, "amount"], "at most 6500000"),
    (("loans", 1, "due_time"), "2025-02-01T00:00:00+00:00", ["loans", 1, "due_time"], "0 to 365 days after"),
    (("loans", 1, "amount"), math.inf, ["loans", 1, "amount"], "must be a finite number"),
    (("loans", 0, "days_late"), 10**6, ["loans", 0, "days_late"], "at most 730 (days)"),
]


@pytest.mark.parametrize(
    ("path", "value", "loc", "bound"), BOUNDS, ids=[f"{'.'.join(map(str, b[0]))}={b[1]}" for b in BOUNDS]
)
def test_the_arrow_path_applies_the_bounds_of_the_json_path(path, value, loc, bound):
    """The same ranges (`data.bounds`) on both paths: the JSON model refuses the value at the same
    field, and the Arrow decoder names the application, the record, the field and the bound."""
    sample = [hand_payload(), hand_payload(), hand_payload()]
    set_path(sample[1], path, value)
    with pytest.raises(ValidationError) as refused:
        ApplicationRequest.model_validate(sample[1])
    assert [tuple(error["loc"]) for error in refused.value.errors()] == [tuple(loc)]
    with pytest.raises(ArrowBodyError) as caught:
        decode_batch(encode_payloads(sample), LIMIT)
    [problem] = caught.value.details
    assert problem["loc"] == ["body", "applications", 1, *loc] and bound in problem["msg"], problem


@pytest.mark.parametrize(("name", "limit"), [("events", MAX_EVENTS), ("loans", MAX_LOANS)])
def test_too_many_events_or_loans_per_application(name, limit):
    sample = [hand_payload(events=2, loans=2), hand_payload(events=MAX_EVENTS + 1, loans=MAX_LOANS + 1)]
    sample[1]["events" if name == "loans" else "loans"] = []
    expected = [{"loc": ["body", "applications", 1, name], "msg": f"must have at most {limit} items"}]
    assert problems_of(encode_payloads(sample)) == expected
    sample[1][name] = sample[1][name][:limit]
    decode_batch(encode_payloads(sample), LIMIT)


def test_a_fractional_integer_and_an_out_of_range_time_are_refused():
    table = payload_table([hand_payload(), hand_payload()])
    table = with_column(table, "term_days", pa.array([30.0, 30.5]))
    table = with_column(table, "signup_time", pa.array([1_700_000_000, 400_000_000_000], pa.timestamp("s")))
    term, signup, applied = problems_of(table_bytes(table))
    assert signup["loc"] == ["body", "applications", 1, "applicant", "signup_time"]
    assert signup["msg"].startswith("must be between 2007-01-01T00:00:00Z and the service's clock + 5 minutes")
    assert term == {"loc": ["body", "applications", 1, "application", "term_days"], "msg": "must be a whole number"}
    # as on the JSON path, a sign-up in the future also makes the application come before it
    assert applied == {
        "loc": ["body", "applications", 1, "application", "application_time"],
        "msg": "must be no earlier than the applicant's signup_time",
    }


def test_a_null_event_is_refused():
    table = payload_table([hand_payload(events=3)])
    events = table["events"].combine_chunks()
    structs = events.values
    mask = pa.array([False, True, False])
    nulled = pa.StructArray.from_arrays(structs.flatten(), fields=list(structs.type), mask=mask)
    table = with_column(table, "events", pa.ListArray.from_arrays(events.offsets, nulled))
    assert problems_of(table_bytes(table)) == [
        {"loc": ["body", "applications", 0, "events", 1], "msg": "must not be null"}
    ]


def test_many_problems_list_the_first_in_row_order_and_count_the_rest():
    sample = [hand_payload(events=1, loans=0) for _ in range(30)]
    for payload in sample:
        payload["application"]["amount"] = -1.0
        payload["events"][0]["amount"] = -1.0
    with pytest.raises(ArrowBodyError) as caught:
        decode_batch(encode_payloads(sample), LIMIT)
    details = caught.value.details
    assert caught.value.total == 60 and len(details) == MAX_DETAILS + 1
    amount, event_amount = (f"must be {bounds.bound(t, 'amount').requirement(0)}" for t in ("applications", "events"))
    assert details[:3] == [
        {"loc": ["body", "applications", 0, "application", "amount"], "msg": amount},
        {"loc": ["body", "applications", 0, "events", 0, "amount"], "msg": event_amount},
        {"loc": ["body", "applications", 1, "application", "amount"], "msg": amount},
    ]
    assert details[-1] == {"loc": ["body"], "msg": "40 more problems not listed"}


def arrow_file_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize(
    "make_body",
    [lambda: b"", lambda: b'{"applications": []}', lambda: arrow_file_bytes(payload_table([hand_payload()]))],
    ids=["empty", "json", "arrow-file-format"],
)
def test_a_body_that_is_not_an_arrow_stream(make_body: Callable[[], bytes]):
    [detail] = problems_of(make_body())
    assert detail["loc"] == ["body"]
    assert detail["msg"].startswith("not an Arrow IPC stream (application/vnd.apache.arrow.stream)")


def test_a_missing_required_column_names_it_and_its_type():
    table = payload_table([hand_payload()]).drop_columns(["country"])
    assert problems_of(table_bytes(table)) == [
        {
            "loc": ["body", "country"],
            "msg": "missing column, expected string (string, large_string, string_view or a dictionary of strings)",
        }
    ]


def test_unknown_columns_and_struct_fields_are_refused():
    table = payload_table([hand_payload()]).append_column("colour", pa.array(["red"]))
    [detail] = problems_of(table_bytes(table))
    assert detail["loc"] == ["body", "colour"] and detail["msg"].startswith("unknown column")
    events = table["events"].combine_chunks()
    structs = events.values
    moods = pa.array([1] * len(structs))
    extra = pa.StructArray.from_arrays([*structs.flatten(), moods], names=[*structs.type.names, "mood"])
    table = with_column(table.drop_columns(["colour"]), "events", pa.ListArray.from_arrays(events.offsets, extra))
    [detail] = problems_of(table_bytes(table))
    assert detail["loc"] == ["body", "events", "mood"] and detail["msg"].startswith("unknown column")


@pytest.mark.parametrize(
    ("name", "array", "loc", "expected"),
    [
        (
            "amount",
            pa.array(["2600"]),
            ["body", "amount"],
            "expected float64 (or another float or integer type), got string",
        ),
        ("signup_time", pa.array(["2025-01-10T08:00:00Z"]), ["body", "signup_time"], "expected timestamp"),
        ("term_days", pa.array([True]), ["body", "term_days"], "expected integer"),
        ("events", pa.array([{"event_time": 1}]), ["body", "events"], "expected list<struct>"),
    ],
)
def test_a_wrong_type_names_the_column_and_the_expected_type(name, array, loc, expected):
    table = with_column(payload_table([hand_payload(events=0)]), name, array)
    [detail] = problems_of(table_bytes(table))
    assert detail["loc"] == loc and detail["msg"].startswith(expected), detail


def test_a_wrong_struct_field_type_names_it():
    table = payload_table([hand_payload(events=1)])
    events = table["events"].combine_chunks()
    fields = events.values.flatten()
    bad = pa.StructArray.from_arrays([pa.array(["yesterday"]), *fields[1:]], names=events.values.type.names)
    table = with_column(table, "events", pa.ListArray.from_arrays(events.offsets, bad))
    [detail] = problems_of(table_bytes(table))
    assert detail["loc"] == ["body", "events", "event_time"] and detail["msg"].startswith("expected timestamp")


def test_batch_size_limits():
    body = encode_payloads([hand_payload() for _ in range(3)])
    assert decode_batch(body, 3)["applications"]["application_id"].tolist() == [0, 1, 2]
    with pytest.raises(TooManyApplicationsError) as caught:
        decode_batch(body, 2)
    assert caught.value.details == [{"loc": ["body"], "msg": "at most 2 applications per request, got at least 3"}]
    assert (caught.value.max_applications, caught.value.rows) == (2, 3)
    empty = table_bytes(payload_table([hand_payload()]).slice(0, 0))
    assert problems_of(empty) == [{"loc": ["body"], "msg": "at least 1 application is required, got 0 rows"}]


def test_encoding_refuses_unknown_keys_and_wrong_types():
    payload = hand_payload()
    payload["applicant"]["colour"] = "red"
    with pytest.raises(ValueError, match="applicant: unknown key"):
        encode_payloads([payload])
    payload = hand_payload()
    payload["events"][0]["event_time"] = "not a time"
    with pytest.raises(ValueError, match="events.event_time"):
        encode_payloads([payload])


@pytest.mark.parametrize("name", ["country", "events"])
def test_a_duplicate_column_is_refused(name):
    table = payload_table([hand_payload()])
    table = table.append_column(pa.field(name, table.schema.field(name).type), table[name])
    assert problems_of(table_bytes(table)) == [{"loc": ["body", name], "msg": "duplicate column"}]


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_compressed_buffers_are_refused_before_they_are_inflated(codec):
    """A few kB of compressed zeros would inflate to hundreds of MB before any check could run."""
    table = payload_table([hand_payload(), hand_payload()])
    table = with_column(table, "device_os", pa.array(["a" * 50_000_000, None]))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=codec)) as writer:
        writer.write_table(table)
    body = sink.getvalue().to_pybytes()
    assert len(body) < 1_000_000
    assert problems_of(body) == [
        {"loc": ["body"], "msg": "compressed IPC buffers are not accepted: send the Arrow stream uncompressed"}
    ]
