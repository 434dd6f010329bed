"""Windowed aggregates of raw events strictly before each application's time (vectorised, no row loops).

Amounts are converted to USD with the applicant's country rate so that income and spending
compare across countries. Every aggregate is a `np.bincount` over the application's row
position, so a batch of any size costs a few passes over its events.
"""

from __future__ import annotations

import numpy as np

from tala_ray.features.columns import Columns, take
from tala_ray.features.join import join_applications
from tala_ray.features.timeutil import DAY_MS

WINDOWS_DAYS = (7, 30, 90)
LOOKBACK_DAYS = 180
MONTH_DAYS = 30.4
FLOW_SMOOTHING_USD = 20.0
INSTALL_CATEGORIES = ("betting", "finance", "social", "productivity", "gaming")


class _Window:
    """The events of a batch joined to their application: row position, age in days, USD amount."""

    def __init__(self, events: Columns, n: int) -> None:
        self.n = n
        self.pos = events["_pos"]
        self.age_days = events["_age_ms"] / DAY_MS
        self.kind = events["event_type"]
        self.usd_known = ~np.isnan(events["_usd"])
        self.usd = np.where(self.usd_known, events["_usd"], 0.0)  # a missing amount adds nothing
        self.category = events["app_category"]
        self._of_kind: dict[str, np.ndarray] = {}
        self._within: dict[float, np.ndarray] = {}

    def of_kind(self, kind: str) -> np.ndarray:
        """Mask of the events of one type (computed once per type)."""
        if kind not in self._of_kind:
            self._of_kind[kind] = self.kind == kind
        return self._of_kind[kind]

    def total(self, mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Per-application sum of `weights` (or count) over the masked events."""
        w = None if weights is None else weights[mask]
        return np.bincount(self.pos[mask], weights=w, minlength=self.n).astype(np.float64)

    def latest_age(self, mask: np.ndarray) -> np.ndarray:
        """Days since the most recent masked event (NaN when there is none)."""
        out = np.full(self.n, np.inf)
        np.minimum.at(out, self.pos[mask], self.age_days[mask])
        return np.where(np.isinf(out), np.nan, out)

    def within(self, days: float) -> np.ndarray:
        """Mask of the events at most `days` before the application (computed once per window)."""
        if days not in self._within:
            self._within[days] = self.age_days <= days
        return self._within[days]

    def installs_of(self, categories: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Mask of the app installs of each category (categories compared on the installs only)."""
        where = np.flatnonzero(self.of_kind("app_install"))
        among = self.category[where]
        masks = {}
        for category in categories:
            mask = np.zeros(len(self.pos), dtype=bool)
            mask[where[among == category]] = True
            masks[category] = mask
        return masks


def join_events(events: Columns, apps: Columns) -> Columns:
    """Events joined to applications (`_pos`, `_app_ms`, `_fx`), kept only if strictly before and in the lookback."""
    fields = ("applicant_id", "event_time", "event_type", "amount", "app_category")
    joined = join_applications({name: events[name] for name in fields}, apps)
    age_ms = joined["_app_ms"] - joined["event_time"]
    keep = (age_ms > 0) & (age_ms <= LOOKBACK_DAYS * DAY_MS)
    joined = take(joined, keep) | {"_age_ms": age_ms[keep]}
    return joined | {"_usd": joined["amount"] / joined["_fx"]}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def _flow_features(w: _Window, kind: str, label: str) -> dict[str, np.ndarray]:
    is_kind = w.of_kind(kind)
    out: dict[str, np.ndarray] = {}
    for days in WINDOWS_DAYS:
        mask = is_kind & w.within(days)
        out[f"{label}_sum_{days}d_usd"] = w.total(mask, w.usd)
        out[f"{label}_count_{days}d"] = w.total(mask)
    counted = is_kind & w.within(90) & w.usd_known
    sums, squares, counts = w.total(counted, w.usd), w.total(counted, w.usd**2), w.total(counted)
    mean = _ratio(sums, counts)
    variance = np.maximum(_ratio(squares, counts) - mean**2, 0.0)
    out[f"{label}_mean_90d_usd"] = mean
    out[f"{label}_cv_90d"] = _ratio(np.sqrt(variance), mean)
    out[f"days_since_last_{label}"] = w.latest_age(is_kind)
    return out


def _largest_share(w: _Window, mask: np.ndarray, totals: np.ndarray) -> np.ndarray:
    largest = np.zeros(w.n)
    np.maximum.at(largest, w.pos[mask], w.usd[mask])
    return _ratio(largest, totals)


def _regularity_features(w: _Window) -> dict[str, np.ndarray]:
    """Pay-day regularity: salaried applicants get a near-constant inflow at the same point of each month."""
    inflow = w.of_kind("mm_in") & w.usd_known
    phase = 2 * np.pi * np.mod(w.age_days, MONTH_DAYS) / MONTH_DAYS
    total = w.total(inflow, w.usd)
    cos, sin = w.total(inflow, w.usd * np.cos(phase)), w.total(inflow, w.usd * np.sin(phase))
    months = np.minimum((w.age_days // MONTH_DAYS).astype(np.int64), 2)
    recent = inflow & w.within(3 * MONTH_DAYS)
    by_month = np.bincount(
        w.pos[recent] * 3 + months[recent], weights=w.usd[recent], minlength=w.n * 3
    ).reshape(w.n, 3)
    month_mean = by_month.mean(axis=1)
    in_90 = w.total(inflow & w.within(90), w.usd)
    return {
        "inflow_payday_concentration": _ratio(np.hypot(cos, sin), total),
        "inflow_monthly_cv": _ratio(by_month.std(axis=1), month_mean),
        "inflow_largest_share_90d": _largest_share(w, inflow & w.within(90), in_90),
    }


def _activity_features(w: _Window) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for days in (30, 90):
        mask = w.of_kind("airtime") & w.within(days)
        out[f"airtime_sum_{days}d_usd"] = w.total(mask, w.usd)
    out["airtime_count_90d"] = w.total(w.of_kind("airtime") & w.within(90))
    out["days_since_last_topup"] = w.latest_age(w.of_kind("airtime"))
    for days in (30, 90, LOOKBACK_DAYS):
        out[f"bill_count_{days}d"] = w.total(w.of_kind("bill_pay") & w.within(days))
    out["bill_sum_90d_usd"] = w.total(w.of_kind("bill_pay") & w.within(90), w.usd)
    installs = w.installs_of(INSTALL_CATEGORIES)
    for category in INSTALL_CATEGORIES:
        out[f"{category}_installs"] = w.total(installs[category])
    out["betting_installs_90d"] = w.total(installs["betting"] & w.within(90))
    out["event_count_90d"] = w.total(w.within(90))
    out["days_since_last_event"] = w.latest_age(np.ones(len(w.pos), dtype=bool))
    return out


def _longest_gap_days(events: Columns, n: int) -> np.ndarray:
    """Longest silence between consecutive events in the lookback (or since its first event)."""
    span = LOOKBACK_DAYS * DAY_MS + 1  # ages lie in (0, span): one int64 key sorts by position, then age
    order = np.argsort(events["_pos"].astype(np.int64) * span + events["_age_ms"], kind="stable")
    pos, age = events["_pos"][order], events["_age_ms"][order] / DAY_MS
    gaps = np.diff(age, prepend=0.0)
    first = np.r_[True, pos[1:] != pos[:-1]] if len(pos) else np.zeros(0, dtype=bool)
    gaps[first] = age[first]  # gap between the application and the latest event
    out = np.zeros(n)
    np.maximum.at(out, pos, gaps)
    return np.where(np.bincount(pos, minlength=n) > 0, out, np.nan)


def event_features(events: Columns, n: int) -> dict[str, np.ndarray]:
    """All event aggregates for `n` applications from the joined events of `join_events`."""
    w = _Window(events, n)
    out = {**_flow_features(w, "mm_in", "inflow"), **_flow_features(w, "mm_out", "outflow")}
    for days in (30, 90):
        inflow, outflow = out[f"inflow_sum_{days}d_usd"], out[f"outflow_sum_{days}d_usd"]
        out[f"spend_ratio_log_{days}d"] = np.log((outflow + FLOW_SMOOTHING_USD) / (inflow + FLOW_SMOOTHING_USD))
    out["net_flow_90d_usd"] = out["inflow_sum_90d_usd"] - out["outflow_sum_90d_usd"]
    out.update(_regularity_features(w))
    out.update(_activity_features(w))
    out["longest_gap_days"] = _longest_gap_days(events, n)
    return out
