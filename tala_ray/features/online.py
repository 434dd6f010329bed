"""The online path: features of applications sent as JSON (the applicant, the application, the
applicant's recent raw events and loan history), through the same `compute_features` as the batch job."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NaiveDatetime

from tala_ray.data import schema
from tala_ray.features.definitions import compute_features

MAX_EVENTS = 5_000
MAX_LOANS = 200

Country = Literal["KE", "PH", "MX", "IN"]
DeviceOs = Literal["android", "ios", "feature_phone"]
EventType = Literal["mm_in", "mm_out", "airtime", "bill_pay", "app_install"]
AppCategory = Literal["finance", "betting", "social", "productivity", "gaming"]
Timestamp = AwareDatetime | NaiveDatetime  # naive times are taken as UTC


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicantInfo(_Strict):
    country: Country
    signup_time: Timestamp
    device_os: DeviceOs | None = None
    device_price_usd: float | None = Field(None, ge=0)
    device_age_months: int | None = Field(None, ge=0)


class ApplicationInfo(_Strict):
    amount: float = Field(gt=0, description="Requested amount, local currency.")
    term_days: int = Field(gt=0, le=365)
    application_time: Timestamp


class RawEvent(_Strict):
    event_time: Timestamp
    event_type: EventType
    amount: float | None = Field(None, ge=0, description="Local currency; null for app installs.")
    app_category: AppCategory | None = None


class LoanRecord(_Strict):
    disbursed_time: Timestamp
    due_time: Timestamp
    amount: float = Field(ge=0, description="Local currency.")
    repaid: bool
    days_late: int = Field(ge=0)


class ApplicationRequest(_Strict):
    """One application with the raw data known about the applicant (events and loans may include
    records at or after the application time: they are ignored, as in the batch job)."""

    applicant: ApplicantInfo
    application: ApplicationInfo
    events: list[RawEvent] = Field(default_factory=list, max_length=MAX_EVENTS)
    loans: list[LoanRecord] = Field(default_factory=list, max_length=MAX_LOANS)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _frame(rows: list[dict], columns: list[str], times: tuple[str, ...]) -> pd.DataFrame:
    """The rows as a frame; time columns converted to UTC straight from the request's datetimes."""
    if not rows:
        return pd.DataFrame(rows, columns=columns).astype({c: "datetime64[ms, UTC]" for c in times})
    data: dict[str, object] = {c: [row[c] for row in rows] for c in columns}
    for column in times:
        stamps = pd.to_datetime([_utc(value) for value in data[column]], utc=True)
        data[column] = stamps.astype(schema.TS.to_pandas_dtype())
    return pd.DataFrame(data, columns=columns)


def request_tables(requests: list[ApplicationRequest]) -> dict[str, pd.DataFrame]:
    """The raw tables `compute_features` takes; request i is applicant i and application i."""
    # `vars` of these flat models is their fields (what `model_dump` returns), without its per-call cost
    applicants = [{"applicant_id": i, **vars(r.applicant)} for i, r in enumerate(requests)]
    applications = [{"application_id": i, "applicant_id": i, **vars(r.application)} for i, r in enumerate(requests)]
    events = [{"applicant_id": i, **vars(e)} for i, r in enumerate(requests) for e in r.events]
    loans = [{"applicant_id": i, **vars(loan)} for i, r in enumerate(requests) for loan in r.loans]
    return {
        "applicants": _frame(applicants, list(schema.APPLICANTS.names), ("signup_time",)),
        "applications": _frame(
            applications, ["application_id", "applicant_id", "application_time", "amount", "term_days"], ("application_time",)
        ),
        "events": _frame(events, list(schema.EVENTS.names), ("event_time",)),
        "loans": _frame(
            loans, ["applicant_id", "disbursed_time", "due_time", "amount", "repaid", "days_late"], ("disbursed_time", "due_time")
        ),
    }


def features_from_requests(requests: list[ApplicationRequest]) -> pd.DataFrame:
    """Features of each request, in order, with the same columns as `compute_features`
    (`application_id` is the request's position)."""
    tables = request_tables(requests)
    return compute_features(tables["applications"], tables["applicants"], tables["events"], tables["loans"])
