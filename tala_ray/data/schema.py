"""Arrow schemas of the synthetic lending world's tables: the contract every reader checks."""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1"

TS = pa.timestamp("ms", tz="UTC")

COUNTRIES = ("KE", "PH", "MX", "IN")
# Exchange rates, local currency per USD: amounts in the tables are local; features and limits convert with these.
FX_PER_USD: dict[str, float] = {"KE": 130.0, "PH": 56.0, "MX": 17.0, "IN": 83.0}
EVENT_TYPES = ("mm_in", "mm_out", "airtime", "bill_pay", "app_install")
APP_CATEGORIES = ("finance", "betting", "social", "productivity", "gaming")
DEVICE_OS = ("android", "ios", "feature_phone")
COHORTS = ("experiment", "historical")
INTERVENTION = "reminder_ontime_discount"

APPLICANTS = pa.schema(
    [
        pa.field("applicant_id", pa.int64(), nullable=False),
        pa.field("country", pa.string(), nullable=False),
        pa.field("signup_time", TS, nullable=False),
        pa.field("device_os", pa.string()),
        pa.field("device_price_usd", pa.float64()),
        pa.field("device_age_months", pa.int32()),
    ]
)

EVENTS = pa.schema(
    [
        pa.field("event_id", pa.int64(), nullable=False),  # unique; the streaming path's idempotency key
        pa.field("applicant_id", pa.int64(), nullable=False),
        pa.field("event_time", TS, nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("amount", pa.float64()),  # local currency; null for app installs and some missing values
        pa.field("app_category", pa.string()),  # only for app installs
    ]
)

LOANS = pa.schema(
    [
        pa.field("loan_id", pa.int64(), nullable=False),
        pa.field("applicant_id", pa.int64(), nullable=False),
        pa.field("disbursed_time", TS, nullable=False),
        pa.field("due_time", TS, nullable=False),
        pa.field("amount", pa.float64(), nullable=False),
        pa.field("repaid", pa.bool_(), nullable=False),
        pa.field("days_late", pa.int32(), nullable=False),
    ]
)

APPLICATIONS = pa.schema(
    [
        pa.field("application_id", pa.int64(), nullable=False),
        pa.field("applicant_id", pa.int64(), nullable=False),
        pa.field("application_time", TS, nullable=False),
        pa.field("amount", pa.float64(), nullable=False),
        pa.field("term_days", pa.int32(), nullable=False),
        pa.field("cohort", pa.string(), nullable=False),
        pa.field("treatment", pa.int8(), nullable=False),
        pa.field("propensity", pa.float64(), nullable=False),
        pa.field("defaulted", pa.int8(), nullable=False),
    ]
)

TRUTH = pa.schema(
    [
        pa.field("application_id", pa.int64(), nullable=False),
        pa.field("pd_control", pa.float64(), nullable=False),
        pa.field("pd_treated", pa.float64(), nullable=False),
        pa.field("true_uplift", pa.float64(), nullable=False),  # pd_control - pd_treated: repayment gain
        pa.field("occupation", pa.string(), nullable=False),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "applicants": APPLICANTS,
    "events": EVENTS,
    "loans": LOANS,
    "applications": APPLICATIONS,
    "truth": TRUTH,
}
