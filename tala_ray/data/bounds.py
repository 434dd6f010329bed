"""The defensible range of every numeric and time field of the raw tables: ONE source for every path
that reads them. The JSON request models (`features/online.py`) take pydantic constraints and time
checks from here, the batch quarantine (`data/validation.py`) its reason codes and details, and the
Arrow body decoder and the streaming consumers call `problems` (columns in, the rows breaking each
bound out).

Each bound is data (`Bound`: table, field, range, unit, why, quarantine codes). `problems` checks
the numpy column form of `features.columns`: times as epoch milliseconds, numbers as float64 where
NaN means missing (a missing value is not out of range: whether a field may be missing is the
schema's rule). NaN is never a value: a JSON or Arrow reader refuses it before converting (pydantic
`allow_inf_nan=False`, `pyarrow.compute.is_nan`). Every number bound is finite, so an infinity
breaks one.

Times lie between `TIME_FLOOR` and the service's clock plus `CLOCK_SKEW`: only the upper bound moves
with the clock, so replays of past applications stay valid.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import pyarrow as pa

from tala_ray.data import schema

DAY_MS = 86_400_000
TIME_FLOOR = datetime(2007, 1, 1, tzinfo=UTC)
TIME_FLOOR_MS = int(TIME_FLOOR.timestamp()) * 1000
CLOCK_SKEW = timedelta(minutes=5)
CLOCK_SKEW_MS = int(CLOCK_SKEW.total_seconds()) * 1000
MAX_TERM_DAYS = 365
MAX_ARM_CODE = 15  # treatment codes: 0 = no intervention, then the arms of an experiment
WEAKEST_FX = max(schema.FX_PER_USD.values())  # local units per USD of the weakest currency (KES)

Kind = Literal["number", "time", "interval"]
Side = Literal["below", "above"]

_TIME_WHY = (
    "no account, mobile-money record or loan predates mobile money (M-Pesa, the first such service, launched in "
    "Kenya in March 2007), and none comes from the future beyond a few minutes of clock skew between systems"
)


def _local(usd: float) -> int:
    """A cap in local currency units, the same for every country: `usd` at the weakest currency."""
    return round(usd * WEAKEST_FX)


def _plain(value: float) -> float:
    """An integer when whole (pydantic then says 650000, not 650000.0)."""
    return int(value) if float(value).is_integer() else float(value)


def _text(value: float) -> str:
    return str(_plain(value))


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Bound:
    """`field` of `table` lies in [`low`, `high`] (`unit`), because `why`.

    kind "number": the value; "time": epoch ms from `low` to the service's clock + `high` ms;
    "interval": `field - relative_to` in ms (`relative_to` is another table's column, joined to
    each row, when `joined`). Only number ranges may be open at an end (`low_exclusive`,
    `high_exclusive`). A row under `low` is quarantined as `below`, over `high` as `above`.
    """

    table: str
    field: str
    kind: Kind
    low: float
    high: float
    unit: str
    why: str
    below: str
    above: str
    relative_to: str | None = None
    joined: bool = False
    low_exclusive: bool = False
    high_exclusive: bool = False

    @property
    def reads(self) -> tuple[str, ...]:
        """The columns the check reads."""
        return (self.field,) if self.relative_to is None else (self.field, self.relative_to)

    def limits(self, now_ms: int) -> tuple[float, float]:
        """The absolute range at the service's clock `now_ms` (epoch ms)."""
        return self.low, now_ms + self.high if self.kind == "time" else self.high

    def broken(self, values: np.ndarray | float, now_ms: int) -> tuple[np.ndarray | bool, np.ndarray | bool]:
        """(under low, over high) for values (numpy arrays or scalars); NaN is neither."""
        low, high = self.limits(now_ms)
        under = values <= low if self.low_exclusive else values < low
        over = values >= high if self.high_exclusive else values > high
        return under, over

    def requirement(self, now_ms: int) -> str:
        """What a value must be, naming the bound (a 422's message, the quarantine's detail)."""
        if self.kind == "time":
            return (
                f"between {_iso(self.low)} and the service's clock + {_text(self.high / 60_000)} minutes "
                f"({_iso(now_ms + self.high)})"
            )
        if self.kind == "interval":
            reference = f"the applicant's {self.relative_to}" if self.joined else self.relative_to
            if math.isinf(self.high):
                return f"no earlier than {reference}"
            return f"{_text(self.low / DAY_MS)} to {_text(self.high / DAY_MS)} days after {reference}"
        low = f"{'greater than' if self.low_exclusive else 'at least'} {_text(self.low)}"
        high = f"{'less than' if self.high_exclusive else 'at most'} {_text(self.high)}"
        return f"{low} and {high} ({self.unit})"

    def constraints(self) -> dict[str, float | bool]:
        """pydantic `Field` constraints of a number bound (floats also refuse NaN and infinities)."""
        if self.kind != "number":
            raise KeyError(f"no number bound for {self.table}.{self.field}")
        out: dict[str, float | bool] = {
            "gt" if self.low_exclusive else "ge": _plain(self.low),
            "lt" if self.high_exclusive else "le": _plain(self.high),
        }
        if pa.types.is_floating(schema.TABLES[self.table].field(self.field).type):
            out["allow_inf_nan"] = False
        return out


def _number(table: str, field: str, low: float, high: float, unit: str, codes: tuple[str, str], why: str) -> Bound:
    return Bound(table, field, "number", low, high, unit, why, *codes)


def _time(table: str, field: str) -> Bound:
    codes = ("impossible_timestamp", "future_timestamp")
    return Bound(table, field, "time", TIME_FLOOR_MS, CLOCK_SKEW_MS, "UTC", _TIME_WHY, *codes)


MAX_LOAN_LOCAL = _local(5_000)
MAX_EVENT_LOCAL = _local(50_000)

# fmt: off
BOUNDS: tuple[Bound, ...] = (
    _time("applicants", "signup_time"),
    _number("applicants", "device_price_usd", 0, 10_000, "USD", ("negative_device_price", "device_price_too_high"),
            "a handset's price: the dearest mass-market phones cost about USD 2,000 (the world's dearest USD 2,619)"),
    _number("applicants", "device_age_months", 0, 240, "months", ("negative_device_age", "device_too_old"),
            "a handset used for mobile money: 20 years covers the oldest GSM feature phones still working"),
    _time("applications", "application_time"),
    Bound("applications", "application_time", "interval", 0, math.inf, "ms",
          "an applicant applies after signing up (tenure is not negative)",
          "application_before_signup", "application_before_signup", relative_to="signup_time", joined=True),
    replace(_number("applications", "amount", 0, MAX_LOAN_LOCAL, "local currency",
                    ("non_positive_amount", "amount_too_large"),
                    "a loan is positive and at most USD 5,000 at the weakest currency: 12x the largest (USD 400)"),
            low_exclusive=True),
    _number("applications", "term_days", 1, MAX_TERM_DAYS, "days", ("non_positive_term", "term_too_long"),
            "loans run from a day to a year"),
    _number("applications", "treatment", 0, MAX_ARM_CODE, "arm code", ("invalid_treatment", "invalid_treatment"),
            "no intervention (0) or the intervention arm given (1, 2, ...: one arm is 1)"),
    replace(_number("applications", "propensity", 0, 1, "probability", ("invalid_propensity", "invalid_propensity"),
                    "inverse-propensity weights divide by p and by 1 - p: strictly between 0 and 1"),
            low_exclusive=True, high_exclusive=True),
    _number("applications", "defaulted", 0, 1, "flag", ("invalid_outcome", "invalid_outcome"),
            "the loan defaulted (1) or was repaid (0)"),
    _time("events", "event_time"),
    _number("events", "amount", 0, MAX_EVENT_LOCAL, "local currency", ("negative_amount", "amount_too_large"),
            "one mobile-money transaction: USD 50,000 at the weakest currency, 26x M-Pesa's per-transaction limit "
            "(KES 250,000) and 7x the world's largest (USD 7,000)"),
    _time("loans", "disbursed_time"),
    Bound("loans", "due_time", "interval", 0, MAX_TERM_DAYS * DAY_MS, "ms",
          "a loan falls due after it is disbursed, within the longest term offered",
          "impossible_timestamp", "loan_term_too_long", relative_to="disbursed_time"),
    _number("loans", "amount", 0, MAX_LOAN_LOCAL, "local currency", ("negative_amount", "amount_too_large"),
            "an earlier loan of the same products as an application"),
    _number("loans", "days_late", 0, 730, "days", ("negative_days_late", "days_late_too_large"),
            "a loan is written off 90 days late (the world's maximum); two years bounds any late repayment"),
)
# fmt: on


def of(table: str) -> tuple[Bound, ...]:
    """The bounds of one raw table, in check order."""
    return tuple(b for b in BOUNDS if b.table == table)


def bound(table: str, field: str) -> Bound:
    """The number or time bound of `table.field` (not an interval)."""
    for candidate in BOUNDS:
        if candidate.table == table and candidate.field == field and candidate.kind != "interval":
            return candidate
    raise KeyError(f"no bound for {table}.{field}")


def clock_ms() -> int:
    """The service's clock, epoch milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Problem:
    """The rows (positions) of a table whose values break one side of a bound."""

    bound: Bound
    side: Side
    rows: np.ndarray
    requirement: str

    @property
    def reason(self) -> str:
        """The quarantine reason code."""
        return self.bound.below if self.side == "below" else self.bound.above


def problems(table: str, columns: Mapping[str, np.ndarray], now_ms: int | None = None) -> list[Problem]:
    """Every broken side of every bound of `table` whose columns are given, with its rows.

    `columns` are equally long numpy arrays (times as epoch ms, numbers float64, NaN = missing); a
    bound is checked when `columns` holds every column it reads, so a reader passes what it has (the
    joined bound of applications needs `signup_time`, each application's applicant's)."""
    now = clock_ms() if now_ms is None else now_ms
    found = []
    for rule in of(table):
        if not all(name in columns for name in rule.reads):
            continue
        values = np.asarray(columns[rule.field], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            if rule.relative_to is not None:
                values = values - np.asarray(columns[rule.relative_to], dtype=np.float64)
            sides = rule.broken(values, now)
        for side, mask in zip(("below", "above"), sides, strict=True):
            if mask.any():
                found.append(Problem(rule, side, np.flatnonzero(mask), rule.requirement(now)))
    return found
