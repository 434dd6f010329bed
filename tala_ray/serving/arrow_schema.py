"""The Arrow request format of `POST /v1/decisions/batch` (`Content-Type: application/vnd.apache.arrow.stream`):
its schema and each field's rules, read by the server's decoder (`arrow_body`) and the clients'
encoder (`tala_ray.traffic.arrow_encode`).

One row per application in `REQUEST_SCHEMA`: the applicant's and the application's fields flat at
top level, `events` and `loans` as `list<struct>` columns (the JSON request, columnar). Each field's
rule repeats the type, nullability and choices of the matching pydantic field of `features/online.py`;
the ranges of numbers and times are `data.bounds`' (the decoder checks them with `bounds.problems`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import pyarrow as pa

from tala_ray.features.online import MAX_EVENTS, MAX_LOANS, AppCategory, Country, DeviceOs, EventType

ARROW_STREAM_MEDIA_TYPE = "application/vnd.apache.arrow.stream"

Kind = Literal["str", "time", "float", "int", "bool"]


@dataclass(frozen=True)
class FieldRule:
    """One request field: its kind, whether it must be given, and its allowed values (strings)."""

    name: str
    kind: Kind
    required: bool = False
    choices: tuple[str, ...] = ()


APPLICANT_RULES = (
    FieldRule("country", "str", required=True, choices=get_args(Country)),
    FieldRule("signup_time", "time", required=True),
    FieldRule("device_os", "str", choices=get_args(DeviceOs)),
    FieldRule("device_price_usd", "float"),
    FieldRule("device_age_months", "int"),
)
APPLICATION_RULES = (
    FieldRule("amount", "float", required=True),
    FieldRule("term_days", "int", required=True),
    FieldRule("application_time", "time", required=True),
)
EVENT_RULES = (
    FieldRule("event_time", "time", required=True),
    FieldRule("event_type", "str", required=True, choices=get_args(EventType)),
    FieldRule("amount", "float"),
    FieldRule("app_category", "str", choices=get_args(AppCategory)),
)
LOAN_RULES = (
    FieldRule("disbursed_time", "time", required=True),
    FieldRule("due_time", "time", required=True),
    FieldRule("amount", "float", required=True),
    FieldRule("repaid", "bool", required=True),
    FieldRule("days_late", "int", required=True),
)
TOP_RULES = APPLICANT_RULES + APPLICATION_RULES
TOP_RECORDS: dict[str, tuple[str, tuple[FieldRule, ...]]] = {
    "applicant": ("applicants", APPLICANT_RULES),
    "application": ("applications", APPLICATION_RULES),
}
"""The JSON request's records held at top level -> their raw table (whose `data.bounds` apply) and fields."""
LISTS: dict[str, tuple[tuple[FieldRule, ...], int]] = {
    "events": (EVENT_RULES, MAX_EVENTS),
    "loans": (LOAN_RULES, MAX_LOANS),
}
"""List column -> its items' rules and the most items an application may have."""

ARROW_TYPES: dict[Kind, pa.DataType] = {
    "str": pa.string(),
    "time": pa.timestamp("ms", tz="UTC"),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
}
"""Each kind's type in `REQUEST_SCHEMA` (the decoder accepts more: see `arrow_body`)."""

_ITEM_STRING = pa.dictionary(pa.int32(), pa.string())  # list items repeat a few strings many times


def schema_field(rule: FieldRule, item: bool = False) -> pa.Field:
    """The field of `rule` in `REQUEST_SCHEMA` (list items' strings as dictionaries)."""
    data_type = _ITEM_STRING if item and rule.kind == "str" else ARROW_TYPES[rule.kind]
    return pa.field(rule.name, data_type, nullable=not rule.required)


def list_type(rules: tuple[FieldRule, ...]) -> pa.DataType:
    """The `list<struct>` type of a list column whose items follow `rules`."""
    return pa.list_(pa.field("item", pa.struct([schema_field(rule, item=True) for rule in rules]), nullable=False))


REQUEST_SCHEMA: pa.Schema = pa.schema(
    [
        *(schema_field(rule) for rule in TOP_RULES),
        *(pa.field(name, list_type(rules), nullable=False) for name, (rules, _) in LISTS.items()),
    ]
)
