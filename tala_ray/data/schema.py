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
INTERVENTION = "reminder_ontime_discount"  # the one intervention of a world with one arm
NO_INTERVENTION = "none"  # treatment code 0; the intervention arms are codes 1, 2, ...

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


def truth_pd_column(arm: str) -> str:
    """The truth table's column of the default probability under an option (none or an arm)."""
    return {NO_INTERVENTION: "pd_control", INTERVENTION: "pd_treated"}.get(arm, f"pd_{arm}")


def truth_expected_column(outcome: str, arm: str) -> str:
    """The truth table's column of a continuous outcome's expected value under an option."""
    return f"expected_{outcome}_{arm}"


# Outcomes an application may carry beyond the contract (a world generated with a continuous outcome):
# checked and kept when present, carried into the feature table, never a model input.
APPLICATION_OUTCOMES = pa.schema(
    [
        pa.field("days_late", pa.float64()),  # days after the due date until repaid; a default counts as write-off
    ]
)
OPTIONAL_COLUMNS: dict[str, pa.Schema] = {"applications": APPLICATION_OUTCOMES}

TABLES: dict[str, pa.Schema] = {
    "applicants": APPLICANTS,
    "events": EVENTS,
    "loans": LOANS,
    "applications": APPLICATIONS,
    "truth": TRUTH,
}
