"""Raw request payloads rebuilt from a generated world: what an origination app would send.

Used by the demo's traffic, the serving benchmark and the parity tests, so they all send the
same JSON for the same application.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

RAW_TABLES = ("applicants", "events", "loans", "applications")


def read_world_tables(world: str) -> dict[str, pd.DataFrame]:
    """The raw tables of a world (not the truth) as pandas."""
    import pyarrow.dataset as pads

    from tala_ray.core.storage import join_path, resolve_filesystem

    filesystem, root = resolve_filesystem(world)
    return {
        name: pads.dataset(join_path(root, name), filesystem=filesystem, format="parquet").to_table().to_pandas()
        for name in RAW_TABLES
    }


def _iso(value: Any) -> str:
    return pd.Timestamp(value).isoformat()


def _value(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def request_payload(world: dict[str, pd.DataFrame], application: pd.Series, include_future: bool = False) -> dict:
    """The JSON body of `POST /v1/decisions` for one application of the world.

    Only records before the application time are sent, unless `include_future` (to prove the
    service ignores them as the batch job does).
    """
    applicant_id = application["applicant_id"]
    applicant = world["applicants"].set_index("applicant_id").loc[applicant_id]
    at = application["application_time"]
    events = world["events"][world["events"]["applicant_id"] == applicant_id]
    loans = world["loans"][world["loans"]["applicant_id"] == applicant_id]
    if not include_future:
        events, loans = events[events["event_time"] < at], loans[loans["disbursed_time"] < at]
    return {
        "applicant": {
            "country": applicant["country"],
            "signup_time": _iso(applicant["signup_time"]),
            "device_os": _value(applicant["device_os"]),
            "device_price_usd": _value(float(applicant["device_price_usd"])),
            "device_age_months": None
            if pd.isna(applicant["device_age_months"])
            else int(applicant["device_age_months"]),
        },
        "application": {
            "amount": float(application["amount"]),
            "term_days": int(application["term_days"]),
            "application_time": _iso(at),
        },
        "events": [
            {
                "event_time": _iso(e.event_time),
                "event_type": e.event_type,
                "amount": _value(e.amount),
                "app_category": _value(e.app_category),
            }
            for e in events.itertuples()
        ],
        "loans": [
            {
                "disbursed_time": _iso(loan.disbursed_time),
                "due_time": _iso(loan.due_time),
                "amount": float(loan.amount),
                "repaid": bool(loan.repaid),
                "days_late": int(loan.days_late),
            }
            for loan in loans.itertuples()
        ],
    }


def sample_payloads(world: dict[str, pd.DataFrame], n: int, seed: int = 0) -> list[dict]:
    """Payloads for `n` applications drawn at random from the world."""
    applications = world["applications"]
    sample = applications.sample(min(n, len(applications)), random_state=seed)
    return [request_payload(world, row) for _, row in sample.iterrows()]
