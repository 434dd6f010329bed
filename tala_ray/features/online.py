"""The online path: features of applications sent as JSON (the applicant, the application, the
applicant's recent raw events and loan history), through the same `feature_columns` as the batch job."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired, Self

import numpy as np
import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NaiveDatetime, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError
from typing_extensions import TypedDict

from tala_ray.data import bounds, schema
from tala_ray.features.columns import Columns
from tala_ray.features.definitions import feature_columns, feature_frame
from tala_ray.features.timeutil import datetime_ms

MAX_EVENTS = 5_000
MAX_LOANS = 200

Country = Literal[*schema.COUNTRIES]
DeviceOs = Literal[*schema.DEVICE_OS]
EventType = Literal[*schema.EVENT_TYPES]
AppCategory = Literal[*schema.APP_CATEGORIES]
Timestamp = AwareDatetime | NaiveDatetime  # naive times are taken as UTC


def _bounded(table: str, field: str, description: str | None = None, **default: Any) -> FieldInfo:
    """A field whose range (and, for floats, finiteness) comes from `data.bounds`."""
    return Field(**default, **bounds.bound(table, field).constraints(), description=description)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicantInfo(_Strict):
    country: Country
    signup_time: Timestamp
    device_os: DeviceOs | None = None
    device_price_usd: float | None = _bounded("applicants", "device_price_usd", default=None)
    device_age_months: int | None = _bounded("applicants", "device_age_months", default=None)


class ApplicationInfo(_Strict):
    amount: float = _bounded("applications", "amount", "Requested amount, local currency.")
    term_days: int = _bounded("applications", "term_days")
    application_time: Timestamp


# Events and loans are TypedDicts, not models: validating ~70 events per application into model
# instances cost ~2.5 us each, into dicts ~0.7 us (same rules, same 422 details).
class RawEvent(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    event_time: Timestamp
    event_type: EventType
    amount: NotRequired[Annotated[float | None, _bounded("events", "amount", "Local currency; null for app installs.")]]
    app_category: NotRequired[AppCategory | None]


class LoanRecord(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    disbursed_time: Timestamp
    due_time: Timestamp
    amount: Annotated[float, _bounded("loans", "amount", "Local currency.")]
    repaid: bool
    days_late: Annotated[int, _bounded("loans", "days_late")]


# Where each raw table's records sit in a request: (key, a list of records?).
_LOCATIONS = {
    "applicants": ("applicant", False),
    "applications": ("application", False),
    "events": ("events", True),
    "loans": ("loans", True),
}
_TIME_BOUNDS = tuple(b for b in bounds.BOUNDS if b.kind != "number" and b.table in _LOCATIONS)


def _ms_range(values: list[datetime]) -> tuple[int, int]:
    """(earliest, latest) epoch ms of some times."""
    try:
        return datetime_ms(min(values)), datetime_ms(max(values))
    except TypeError:  # naive (UTC) and aware times mixed
        ms = [datetime_ms(value) for value in values]
        return min(ms), max(ms)


def _time_errors(
    records: Mapping[str, list[Mapping[str, Any]]], now_ms: int, checked: tuple[bounds.Bound, ...] = _TIME_BOUNDS
) -> list[InitErrorDetails]:
    """Errors (loc, message naming the bound) for the times of a request outside `data.bounds` (those of
    `checked`; time and interval ranges are closed)."""
    converted: dict[tuple[str, str], list[int]] = {}

    def ms(table: str, field: str) -> list[int]:
        if (table, field) not in converted:
            converted[table, field] = [datetime_ms(row[field]) for row in records[table]]
        return converted[table, field]

    errors = []
    for bound in checked:
        rows = records[bound.table]
        if not rows:
            continue
        low, high = bound.limits(now_ms)
        key, listed = _LOCATIONS[bound.table]
        if bound.kind == "interval":
            values = [
                a - b for a, b in zip(ms(bound.table, bound.field), ms(bound.table, bound.relative_to), strict=True)
            ]
        elif listed:  # ~60 events: their earliest and latest first
            earliest, latest = _ms_range([row[bound.field] for row in rows])
            if low <= earliest and latest <= high:
                continue
            values = ms(bound.table, bound.field)
        else:
            values = ms(bound.table, bound.field)
        for i, value in enumerate(values):
            if not low <= value <= high:
                message = PydanticCustomError(
                    f"{bound.kind}_out_of_range",
                    "Input should be {requirement}",
                    {"requirement": bound.requirement(now_ms)},
                )
                loc = (key, i, bound.field) if listed else (key, bound.field)
                errors.append(InitErrorDetails(type=message, loc=loc, input=rows[i][bound.field].isoformat()))
    return errors


class ApplicationRequest(_Strict):
    """One application with the raw data known about the applicant (events and loans may include
    records at or after the application time: they are ignored, as in the batch job). Every number
    and time lies in its range of `data.bounds`."""

    applicant: ApplicantInfo
    application: ApplicationInfo
    events: list[RawEvent] = Field(default_factory=list, max_length=MAX_EVENTS)
    loans: list[LoanRecord] = Field(default_factory=list, max_length=MAX_LOANS)

    @model_validator(mode="after")
    def _times_within_bounds(self) -> Self:
        application = {**vars(self.application), "signup_time": self.applicant.signup_time}
        records = {"applicants": [vars(self.applicant)], "applications": [application]}
        errors = _time_errors(records | {"events": self.events, "loans": self.loans}, bounds.clock_ms())
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


# An application read by id: its own time bounds (sign-up, the applicant's, is in the online store).
_APPLICATION_TIME_BOUNDS = tuple(b for b in _TIME_BOUNDS if b.table == "applications" and b.kind == "time")


class ApplicationByIdRequest(_Strict):
    """One application of an applicant whose raw data (record, events, loans) the online store holds:
    read by `applicant_id`, then the same features as an `ApplicationRequest`. The application's
    numbers and time lie in their ranges of `data.bounds`."""

    applicant_id: int = Field(ge=0, le=2**63 - 1, description="The applicant's id in the online store.")
    application: ApplicationInfo

    @model_validator(mode="after")
    def _times_within_bounds(self) -> Self:
        records = {"applications": [vars(self.application)]}
        errors = _time_errors(records, bounds.clock_ms(), _APPLICATION_TIME_BOUNDS)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


def _times(values: list[datetime]) -> np.ndarray:
    return np.array([datetime_ms(value) for value in values], dtype=np.int64)


def _floats(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if value is None else value for value in values], dtype=np.float64)


def _strings(values: list[str | None]) -> np.ndarray:
    return np.array(values, dtype=object)


def application_columns(applications: list[ApplicationInfo]) -> Columns:
    """The `applications` table of some applications; application i is applicant i's."""
    positions = np.arange(len(applications), dtype=np.int64)
    return {
        "application_id": positions,
        "applicant_id": positions,
        "application_time": _times([a.application_time for a in applications]),
        "amount": _floats([a.amount for a in applications]),
        "term_days": _floats([a.term_days for a in applications]),
    }


def request_columns(requests: list[ApplicationRequest]) -> dict[str, Columns]:
    """The raw tables `feature_columns` takes, as numpy columns; request i is applicant i and application i."""
    n = len(requests)
    applicants = [r.applicant for r in requests]
    applications = [r.application for r in requests]
    events = [e for r in requests for e in r.events]
    loans = [loan for r in requests for loan in r.loans]
    positions = np.arange(n, dtype=np.int64)
    return {
        "applicants": {
            "applicant_id": positions,
            "country": _strings([a.country for a in applicants]),
            "signup_time": _times([a.signup_time for a in applicants]),
            "device_os": _strings([a.device_os for a in applicants]),
            "device_price_usd": _floats([a.device_price_usd for a in applicants]),
            "device_age_months": _floats([a.device_age_months for a in applicants]),
        },
        "applications": application_columns(applications),
        "events": {
            "applicant_id": np.repeat(positions, [len(r.events) for r in requests]),
            "event_time": _times([e["event_time"] for e in events]),
            "event_type": _strings([e["event_type"] for e in events]),
            "amount": _floats([e.get("amount") for e in events]),
            "app_category": _strings([e.get("app_category") for e in events]),
        },
        "loans": {
            "applicant_id": np.repeat(positions, [len(r.loans) for r in requests]),
            "disbursed_time": _times([loan["disbursed_time"] for loan in loans]),
            "due_time": _times([loan["due_time"] for loan in loans]),
            "amount": _floats([loan["amount"] for loan in loans]),
            "repaid": np.array([loan["repaid"] for loan in loans], dtype=bool),
            "days_late": _floats([loan["days_late"] for loan in loans]),
        },
    }


def online_feature_columns(requests: list[ApplicationRequest]) -> Columns:
    """Features of each request, in order, as numpy columns (`application_id` is the request's position)."""
    tables = request_columns(requests)
    return feature_columns(tables["applications"], tables["applicants"], tables["events"], tables["loans"])


def features_from_requests(requests: list[ApplicationRequest]) -> pd.DataFrame:
    """Features of each request, in order, with the same columns as `compute_features`
    (`application_id` is the request's position)."""
    return feature_frame(online_feature_columns(requests))
