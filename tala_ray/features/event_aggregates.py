"""Windowed aggregates of raw events strictly before each application's time (vectorised, no row loops).

Amounts are converted to USD with the applicant's country rate so that income and spending
compare across countries. Each event gets a kind code (its type; an app install also its category)
and the aggregates are `np.bincount`s over (kind, application row position) groups, so a batch of any
size costs a few passes over its events, however many features read them. A bincount adds each
group's events in their input order, so a sum is the same as over that group's events alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tala_ray.features.columns import Columns, take
from tala_ray.features.join import join_rows, run_starts
from tala_ray.features.timeutil import DAY_MS

WINDOWS_DAYS = (7, 30, 90)
LOOKBACK_DAYS = 180
MONTH_DAYS = 30.4
FLOW_SMOOTHING_USD = 20.0
INSTALL_CATEGORIES = ("betting", "finance", "social", "productivity", "gaming")

# Event kinds: the types aggregated by amount, installs by app category, other installs, other events.
KINDS = ("mm_in", "mm_out", "airtime", "bill_pay", *(f"install_{c}" for c in INSTALL_CATEGORIES), "install", "other")
_CODE = {kind: code for code, kind in enumerate(KINDS)}
_TYPE_CODE = {
    "mm_in": _CODE["mm_in"],
    "mm_out": _CODE["mm_out"],
    "airtime": _CODE["airtime"],
    "bill_pay": _CODE["bill_pay"],
    "app_install": _CODE["install"],
}
_CATEGORY_CODE = {category: _CODE[f"install_{category}"] for category in INSTALL_CATEGORIES}
# Nested windows (days) for counts; every joined event lies within the last one.
_COUNT_WINDOWS = (*WINDOWS_DAYS, LOOKBACK_DAYS)


def _codes(values: np.ndarray, code_of: dict[str, int], default: int) -> np.ndarray:
    """Code of each value (`default` when it has none or is missing), with one hashing pass over the values."""
    codes, uniques = pd.factorize(values)  # a missing value gets -1: the lookup's last entry
    lookup = [code_of.get(value, default) for value in uniques] + [default]
    return np.asarray(lookup, dtype=np.int64)[codes]


def _kind_codes(events: Columns) -> np.ndarray:
    """Kind code of each raw event: app installs of a known category get that category's kind."""
    codes = _codes(events["event_type"], _TYPE_CODE, _CODE["other"])
    installs = np.flatnonzero(codes == _CODE["install"])
    codes[installs] = _codes(events["app_category"][installs], _CATEGORY_CODE, _CODE["install"])
    return codes


def join_events(events: Columns, apps: Columns) -> Columns:
    """Events joined to applications (`_app_ms`, `_fx`), kept only if strictly before and in the lookback:
    the application's row position `pos`, the event's `age_ms`, `kind` code and `usd` amount."""
    left, right = join_rows(events["applicant_id"], apps["applicant_id"])
    age_ms = apps["_app_ms"][right] - events["event_time"][left]
    joined = {
        "pos": right,
        "age_ms": age_ms,
        "kind": _kind_codes(events)[left],
        "usd": events["amount"][left] / apps["_fx"][right],
    }
    keep = (age_ms > 0) & (age_ms <= LOOKBACK_DAYS * DAY_MS)
    return joined if keep.all() else take(joined, keep)


class _Groups:
    """The joined events of `n` applications grouped by (kind, application): counts, USD sums and latest
    ages as (kind, application) arrays, so that one kind's values form one contiguous row."""

    def __init__(self, events: Columns, n: int) -> None:
        self.n = n
        self.pos = events["pos"]
        self.kind = events["kind"]
        self.age_ms = events["age_ms"]
        self.age_days = self.age_ms / DAY_MS
        self.usd_known = ~np.isnan(events["usd"])
        self.usd = np.where(self.usd_known, events["usd"], 0.0)  # a missing amount adds nothing
        self.group = self.kind * n + self.pos
        self._counts = self._window_counts()
        self._sums: dict[tuple[float, bool], np.ndarray] = {}

    def _window_counts(self) -> np.ndarray:
        """Counts as a (kind, amount known, window of `_COUNT_WINDOWS`, application) array."""
        window = np.zeros(len(self.pos), dtype=np.int64)  # the first count window that holds the event
        for days in _COUNT_WINDOWS[:-1]:
            window += self.age_days > days
        cell = ((self.kind * 2 + self.usd_known) * len(_COUNT_WINDOWS) + window) * self.n + self.pos
        counts = np.bincount(cell, minlength=len(KINDS) * 2 * len(_COUNT_WINDOWS) * self.n)
        counts = counts.reshape(len(KINDS), 2, len(_COUNT_WINDOWS), self.n)
        for longer in range(1, len(_COUNT_WINDOWS)):
            counts[:, :, longer] += counts[:, :, longer - 1]  # nested windows: each holds the shorter ones
        return counts

    def count(self, kind: str, days: float, known_only: bool = False) -> np.ndarray:
        """Events of the kind at most `days` old (only those with an amount if `known_only`)."""
        unknown, known = self._counts[_CODE[kind], :, _COUNT_WINDOWS.index(days)]
        return (known if known_only else unknown + known).astype(np.float64)

    def count_all(self, days: float) -> np.ndarray:
        """Events of any kind at most `days` old."""
        return self._counts[:, :, _COUNT_WINDOWS.index(days)].sum(axis=(0, 1)).astype(np.float64)

    def sums(self, kind: str, days: float, squared: bool = False) -> np.ndarray:
        """Sum of the USD amounts (or their squares) of the kind's events at most `days` old."""
        if (days, squared) not in self._sums:
            inside = self.age_days <= days
            usd = self.usd[inside]
            sums = np.bincount(self.group[inside], weights=usd**2 if squared else usd, minlength=len(KINDS) * self.n)
            self._sums[days, squared] = sums.reshape(len(KINDS), self.n)
        return self._sums[days, squared][_CODE[kind]]

    def latest_ages(self) -> np.ndarray:
        """Days since the most recent event of each (kind, application); inf when there is none."""
        latest = np.full(len(KINDS) * self.n, np.inf)
        np.minimum.at(latest, self.group, self.age_days)
        return latest.reshape(len(KINDS), self.n)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator where the denominator is positive, else NaN."""
    return np.divide(numerator, denominator, out=np.full(len(numerator), np.nan), where=denominator > 0)


def _days_since(latest: np.ndarray) -> np.ndarray:
    """Latest ages with NaN where there was no event."""
    return np.where(np.isinf(latest), np.nan, latest)


def _flow_features(g: _Groups, latest: np.ndarray, kind: str, label: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for days in WINDOWS_DAYS:
        out[f"{label}_sum_{days}d_usd"] = g.sums(kind, days)
        out[f"{label}_count_{days}d"] = g.count(kind, days)
    sums, squares, counts = g.sums(kind, 90), g.sums(kind, 90, squared=True), g.count(kind, 90, known_only=True)
    mean = _ratio(sums, counts)
    variance = np.maximum(_ratio(squares, counts) - mean**2, 0.0)
    out[f"{label}_mean_90d_usd"] = mean
    out[f"{label}_cv_90d"] = _ratio(np.sqrt(variance), mean)
    out[f"days_since_last_{label}"] = _days_since(latest[_CODE[kind]])
    return out


def _regularity_features(g: _Groups) -> dict[str, np.ndarray]:
    """Pay-day regularity: salaried applicants get a near-constant inflow at the same point of each month."""
    inflow = np.flatnonzero((g.kind == _CODE["mm_in"]) & g.usd_known)
    pos, age_days, usd = g.pos[inflow], g.age_days[inflow], g.usd[inflow]
    months, day_of_month = np.divmod(age_days, MONTH_DAYS)
    phase = 2 * np.pi * day_of_month / MONTH_DAYS
    total = np.bincount(pos, weights=usd, minlength=g.n)
    cos = np.bincount(pos, weights=usd * np.cos(phase), minlength=g.n)
    sin = np.bincount(pos, weights=usd * np.sin(phase), minlength=g.n)
    months = np.minimum(months.astype(np.int64), 2)
    recent = age_days <= 3 * MONTH_DAYS
    by_month = np.bincount(pos[recent] * 3 + months[recent], weights=usd[recent], minlength=g.n * 3).reshape(g.n, 3)
    in_90 = age_days <= 90
    largest = np.zeros(g.n)
    np.maximum.at(largest, pos[in_90], usd[in_90])
    return {
        "inflow_payday_concentration": _ratio(np.hypot(cos, sin), total),
        "inflow_monthly_cv": _ratio(by_month.std(axis=1), by_month.mean(axis=1)),
        "inflow_largest_share_90d": _ratio(largest, g.sums("mm_in", 90)),
    }


def _activity_features(g: _Groups, latest: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for days in (30, 90):
        out[f"airtime_sum_{days}d_usd"] = g.sums("airtime", days)
    out["airtime_count_90d"] = g.count("airtime", 90)
    out["days_since_last_topup"] = _days_since(latest[_CODE["airtime"]])
    for days in (30, 90, LOOKBACK_DAYS):
        out[f"bill_count_{days}d"] = g.count("bill_pay", days)
    out["bill_sum_90d_usd"] = g.sums("bill_pay", 90)
    for category in INSTALL_CATEGORIES:
        out[f"{category}_installs"] = g.count(f"install_{category}", LOOKBACK_DAYS)
    out["betting_installs_90d"] = g.count("install_betting", 90)
    out["event_count_90d"] = g.count_all(90)
    out["days_since_last_event"] = _days_since(latest.min(axis=0))
    return out


def _longest_gap_days(g: _Groups) -> np.ndarray:
    """Longest silence between consecutive events in the lookback (or since its first event)."""
    span = LOOKBACK_DAYS * DAY_MS + 1  # ages lie in (0, span): one int64 key sorts by position, then time
    key = (g.pos + 1) * span - g.age_ms
    in_order = bool((key[1:] >= key[:-1]).all())  # events usually come grouped and in time order
    order = slice(None) if in_order else np.argsort(key, kind="stable")
    pos, age = g.pos[order], g.age_days[order]
    starts = run_starts(pos)
    latest = starts - 1  # each application's latest event comes just before the next one's first (-1: the last)
    gaps = age.copy()
    gaps[:-1] -= age[1:]  # to the next, more recent event
    gaps[latest] = age[latest]  # from an application's latest event to the application
    out = np.full(g.n, np.nan)
    out[pos[starts]] = np.maximum.reduceat(gaps, starts)
    return out


def event_features(events: Columns, n: int) -> dict[str, np.ndarray]:
    """All event aggregates for `n` applications from the joined events of `join_events`."""
    g = _Groups(events, n)
    latest = g.latest_ages()
    out = {**_flow_features(g, latest, "mm_in", "inflow"), **_flow_features(g, latest, "mm_out", "outflow")}
    for days in (30, 90):
        inflow, outflow = out[f"inflow_sum_{days}d_usd"], out[f"outflow_sum_{days}d_usd"]
        out[f"spend_ratio_log_{days}d"] = np.log((outflow + FLOW_SMOOTHING_USD) / (inflow + FLOW_SMOOTHING_USD))
    out["net_flow_90d_usd"] = out["inflow_sum_90d_usd"] - out["outflow_sum_90d_usd"]
    out.update(_regularity_features(g))
    out.update(_activity_features(g, latest))
    out["longest_gap_days"] = _longest_gap_days(g)
    return out
