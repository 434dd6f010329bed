"""The feature set: named definitions, their version, and `feature_columns`, the ONE computation that
both the Ray Data batch pipeline (through `compute_features`, on DataFrames) and the online (serving)
path (on numpy columns built from the request) run.

Only events and loans strictly before each application's time feed its features.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from tala_ray.data.schema import FX_PER_USD
from tala_ray.features import columns, event_aggregates, join, loan_history, timeutil
from tala_ray.features.columns import Columns, frame_columns, take
from tala_ray.features.timeutil import DAY_MS

CATEGORICAL = ("country", "device_os")


class FeatureDefinition(BaseModel):
    """One named feature: its dtype in the feature table and a one-line description."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    dtype: Literal["float64", "string"]
    description: str


def _f(name: str, description: str, dtype: Literal["float64", "string"] = "float64") -> FeatureDefinition:
    return FeatureDefinition(name=name, dtype=dtype, description=description)


def _flow_definitions(label: str, kind: str) -> list[FeatureDefinition]:
    out = []
    for days in event_aggregates.WINDOWS_DAYS:
        out.append(
            _f(f"{label}_sum_{days}d_usd", f"Sum of {kind} amounts (USD) in the {days} days before the application.")
        )
        out.append(_f(f"{label}_count_{days}d", f"Number of {kind} events in the {days} days before the application."))
    out.append(_f(f"{label}_mean_90d_usd", f"Mean {kind} amount (USD) over 90 days."))
    out.append(_f(f"{label}_cv_90d", f"Coefficient of variation of {kind} amounts over 90 days (volatility)."))
    out.append(_f(f"days_since_last_{label}", f"Days since the latest {kind} event (lookback 180 days)."))
    return out


FEATURES: list[FeatureDefinition] = [
    _f("country", "Applicant's country code.", "string"),
    _f("device_os", "Device operating system (android, ios, feature_phone).", "string"),
    _f("device_price_usd", "Price of the applicant's device in USD."),
    _f("device_age_months", "Age of the applicant's device in months."),
    _f("tenure_days", "Days from sign-up to the application."),
    _f("loan_amount_usd", "Requested loan amount in USD."),
    _f("term_days", "Requested loan term in days."),
    _f(
        "loan_to_monthly_inflow_log", "log((loan USD + 5) / (90-day inflow / 3 + 5)): loan size against monthly income."
    ),
    *_flow_definitions("inflow", "mobile-money inflow"),
    *_flow_definitions("outflow", "mobile-money outflow"),
    _f("spend_ratio_log_30d", "log((outflow + 20) / (inflow + 20)) over 30 days, USD."),
    _f("spend_ratio_log_90d", "log((outflow + 20) / (inflow + 20)) over 90 days, USD: spending against income."),
    _f("net_flow_90d_usd", "Inflow minus outflow over 90 days, USD."),
    _f(
        "inflow_payday_concentration", "Amount-weighted concentration of inflows at one day of the month (1 = pay day)."
    ),
    _f("inflow_monthly_cv", "Coefficient of variation of inflow totals across the last three 30.4-day months."),
    _f("inflow_largest_share_90d", "Largest single inflow as a share of the 90-day inflow."),
    _f("airtime_sum_30d_usd", "Airtime top-ups in the 30 days before the application, USD."),
    _f("airtime_sum_90d_usd", "Airtime top-ups in the 90 days before the application, USD."),
    _f("airtime_count_90d", "Number of airtime top-ups in 90 days."),
    _f("days_since_last_topup", "Days since the latest airtime top-up."),
    _f("bill_count_30d", "Bills paid in the 30 days before the application."),
    _f("bill_count_90d", "Bills paid in the 90 days before the application."),
    _f("bill_count_180d", "Bills paid in the 180 days before the application."),
    _f("bill_sum_90d_usd", "Bill payments in 90 days, USD."),
    *[
        _f(f"{c}_installs", f"App installs of category {c} in the 180 days before the application.")
        for c in event_aggregates.INSTALL_CATEGORIES
    ],
    _f("betting_installs_90d", "Betting-app installs in the 90 days before the application."),
    _f("event_count_90d", "All raw events in the 90 days before the application."),
    _f("days_since_last_event", "Days since the latest raw event of any kind."),
    _f("longest_gap_days", "Longest silence between events in the 180 days before the application."),
    _f("prior_loan_count", "Loans disbursed before the application."),
    _f("repaid_loan_count", "Earlier loans repaid before the application time."),
    _f("defaulted_loan_count", "Earlier loans written off before the application time."),
    _f("share_loans_repaid", "Repaid share of the earlier loans settled before the application."),
    _f("mean_days_late_repaid", "Mean days late of the earlier loans repaid before the application."),
    _f("overdue_loan_count", "Earlier loans past due and unsettled at the application time."),
    _f("open_loan_count", "Earlier loans not yet due at the application time."),
    _f("days_since_last_loan", "Days since the latest earlier loan was disbursed."),
    _f("prior_loan_mean_usd", "Mean amount of earlier loans, USD."),
]

FEATURE_NAMES: list[str] = [f.name for f in FEATURES]


@lru_cache(maxsize=1)
def feature_set_version() -> str:
    """A short hash of the definitions' code and parameters: models check they get what they learned on."""
    digest = hashlib.sha256()
    for module in (timeutil, columns, join, event_aggregates, loan_history, sys.modules[__name__]):
        digest.update(inspect.getsource(module).encode())
    digest.update(
        json.dumps({"features": [f.model_dump() for f in FEATURES], "fx": FX_PER_USD}, sort_keys=True).encode()
    )
    return "fs-" + digest.hexdigest()[:16]


def _prepare_applications(applications: Columns, applicants: Columns) -> Columns:
    """Each application with its applicant's fields, its time and exchange rate."""
    ids = applicants["applicant_id"]
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    if len(ids) > 1 and bool((sorted_ids[1:] == sorted_ids[:-1]).any()):
        raise ValueError("applicants: applicant_id is not unique")
    wanted = applications["applicant_id"]
    at = np.minimum(np.searchsorted(sorted_ids, wanted), max(len(ids) - 1, 0))
    if len(wanted) and (len(ids) == 0 or not bool((sorted_ids[at] == wanted).all())):
        raise ValueError("applications: an applicant_id has no row in applicants")
    applicant = take({k: v for k, v in applicants.items() if k != "applicant_id"}, order[at])
    fx = np.full(len(wanted), np.nan)
    for code, rate in FX_PER_USD.items():
        fx[applicant["country"] == code] = rate
    return applications | applicant | {"_app_ms": applications["application_time"], "_fx": fx}


def feature_columns(applications: Columns, applicants: Columns, events: Columns, loans: Columns) -> Columns:
    """The feature computation on numpy columns (see `columns.RAW_COLUMNS` for the inputs):
    `application_id` plus every feature of `FEATURES`, in that order, one value per application."""
    apps = _prepare_applications(applications, applicants)
    n = len(apps["_app_ms"])
    values = event_aggregates.event_features(event_aggregates.join_events(events, apps), n)
    values.update(loan_history.loan_features(loan_history.join_loans(loans, apps), n))
    loan_usd = apps["amount"] / apps["_fx"]
    values.update(
        {
            "device_price_usd": apps["device_price_usd"],
            "device_age_months": apps["device_age_months"],
            "tenure_days": (apps["_app_ms"] - apps["signup_time"]) / DAY_MS,
            "loan_amount_usd": loan_usd,
            "term_days": apps["term_days"],
            "loan_to_monthly_inflow_log": np.log((loan_usd + 5) / (values["inflow_sum_90d_usd"] / 3 + 5)),
        }
    )
    out = {"application_id": apps["application_id"]}
    for definition in FEATURES:
        if definition.dtype == "string":
            out[definition.name] = apps[definition.name]
        else:
            out[definition.name] = np.asarray(values[definition.name], dtype=np.float64)
    return out


def feature_frame(columns: Columns) -> pd.DataFrame:
    """The output of `feature_columns` as a DataFrame (string features as pandas strings)."""
    string = {f.name for f in FEATURES if f.dtype == "string"}
    return pd.DataFrame(
        {name: pd.array(values, dtype="str") if name in string else values for name, values in columns.items()}
    )


def compute_features(
    applications: pd.DataFrame, applicants: pd.DataFrame, events: pd.DataFrame, loans: pd.DataFrame
) -> pd.DataFrame:
    """One row per application: `application_id` plus every feature of `FEATURES`, in that order."""
    tables = {"applications": applications, "applicants": applicants, "events": events, "loans": loans}
    raw = {name: frame_columns(name, frame) for name, frame in tables.items()}
    return feature_frame(feature_columns(raw["applications"], raw["applicants"], raw["events"], raw["loans"]))
