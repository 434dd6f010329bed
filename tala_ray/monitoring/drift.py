"""Population drift of every feature and score against the training reference, by day and country.

Each column is binned on the reference (quantile bins of a number, the categories of a string;
missing values and unseen categories get bins of their own). Each day, the decisions of the
`window_days` up to it are compared with the reference of the same segment (all countries, then
each country against its own reference): the PSI says how large the shift is, and a two-sample
chi-square test on the same bins says whether chance explains it at that sample size. Its null
distribution is chi-square(bins - 1), accurate at a few hundred rows, where a fixed PSI bar of 0.1
fires on unchanged data. Every (column, segment, day) judged is one test and gets
`family_alpha / tests`, so the chance of any false alert in a report stays at `family_alpha`; a cell
drifts when its test rejects and its PSI is at least `min_psi`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2

from tala_ray.features.definitions import FEATURES
from tala_ray.monitoring.config import DriftRule
from tala_ray.monitoring.decisions import SCORES
from tala_ray.monitoring.reference import Reference

ALL = "all"
STRING_COLUMNS = frozenset(f.name for f in FEATURES if f.dtype == "string")
MIN_REFERENCE_ROWS = 100  # a country with fewer reference rows is judged only within "all"


@dataclass(frozen=True)
class Bins:
    """The reference's bins of one column: `edges` of a number or `categories` of a string, plus a
    bin for missing values (and one for unseen categories)."""

    edges: np.ndarray | None = None
    categories: tuple[str, ...] | None = None

    @property
    def size(self) -> int:
        return len(self.categories) + 2 if self.categories is not None else len(self.edges) + 2

    def codes(self, values: pd.Series) -> np.ndarray:
        """The bin of each value."""
        if self.categories is not None:
            text = values.astype("str").where(values.notna())
            lookup = {category: k for k, category in enumerate(self.categories)}
            codes = text.map(lookup).fillna(len(self.categories)).to_numpy(dtype=np.int64)
            return np.where(values.isna().to_numpy(), len(self.categories) + 1, codes)
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        return np.where(np.isnan(numbers), len(self.edges) + 1, np.searchsorted(self.edges, numbers, side="right"))


def fit_bins(values: pd.Series, bins: int, categorical: bool) -> Bins:
    """Quantile bins of a numeric reference column (ties merged), or its categories."""
    if categorical:
        return Bins(categories=tuple(sorted(values.dropna().astype(str).unique())))
    numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if not len(numbers):
        return Bins(edges=np.zeros(0))
    return Bins(edges=np.unique(np.quantile(numbers, np.arange(1, bins) / bins)))


def psi(reference: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Population stability index of count vectors (last axis: bins), over the bins either side has,
    each count smoothed by 0.5 so an empty bin stays finite."""
    used = (reference + live) > 0
    k = used.sum(axis=-1, keepdims=True)
    p_ref = np.where(used, (reference + 0.5) / (reference.sum(axis=-1, keepdims=True) + 0.5 * k), 1.0)
    p_live = np.where(used, (live + 0.5) / (live.sum(axis=-1, keepdims=True) + 0.5 * k), 1.0)
    return np.sum((p_live - p_ref) * np.log(p_live / p_ref), axis=-1)


def homogeneity_p_value(reference: np.ndarray, live: np.ndarray) -> np.ndarray:
    """p-value of Pearson's two-sample chi-square test that both counts come from one distribution."""
    n_ref = reference.sum(axis=-1, keepdims=True)
    n_live = live.sum(axis=-1, keepdims=True)
    total = reference + live
    used = total > 0
    share = np.divide(n_live, n_ref + n_live, out=np.zeros_like(n_live, dtype=float), where=(n_ref + n_live) > 0)
    expected_live, expected_ref = total * share, total * (1 - share)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (live - expected_live) ** 2 / expected_live + (reference - expected_ref) ** 2 / expected_ref
    statistic = np.where(used, terms, 0.0).sum(axis=-1)
    dof = used.sum(axis=-1) - 1
    return np.where((dof > 0) & (n_live[..., 0] > 0), chi2.sf(statistic, np.maximum(dof, 1)), 1.0)


@dataclass(frozen=True)
class DriftResult:
    """One row per (day, segment, column) judged, and the per-test error rate used."""

    cells: pd.DataFrame  # day, segment, column, kind, rows, reference_rows, psi, p_value, judged, drifted
    tests: int
    alpha_per_test: float

    def drifted(self) -> pd.DataFrame:
        return self.cells[self.cells["drifted"]]


def _window_counts(day_index: np.ndarray, codes: np.ndarray, days: int, size: int, window: int) -> np.ndarray:
    """Counts per bin of the decisions of the `window` days up to each day (days x bins)."""
    per_day = np.zeros((days, size))
    np.add.at(per_day, (day_index, codes), 1.0)
    cumulative = np.cumsum(per_day, axis=0)
    before = np.vstack([np.zeros((window, size)), cumulative[:-window]]) if window < days else 0.0
    return cumulative - before


def _segments(reference: pd.Series, live: pd.Series, by_country: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
    segments = [(ALL, np.ones(len(reference), bool), np.ones(len(live), bool))]
    if by_country:
        for country in sorted(set(live.astype(str))):
            in_reference = (reference.astype(str) == country).to_numpy()
            if in_reference.sum() >= MIN_REFERENCE_ROWS:
                segments.append((country, in_reference, (live.astype(str) == country).to_numpy()))
    return segments


def drift_by_day(reference: Reference, live: pd.DataFrame, days: pd.Series, rule: DriftRule) -> DriftResult:
    """Drift of every feature and score of `live` (one row per decision, decided on `days`) against
    the reference, for each day from the first decision's to the last's."""
    first_day = days.min()
    day_index = ((days - first_day).dt.days).to_numpy()
    n_days = int(day_index.max()) + 1
    calendar = pd.date_range(first_day, periods=n_days, freq="D")
    reference_frame = pd.concat([reference.features, reference.scores], axis=1)
    rows = []
    for segment, in_reference, in_live in _segments(reference.features["country"], live["country"], rule.by_country):
        for column in [*reference.features.columns, *SCORES]:
            if segment != ALL and column == "country":
                continue
            bins = fit_bins(reference_frame.loc[in_reference, column], rule.bins, column in STRING_COLUMNS)
            ref_counts = np.bincount(bins.codes(reference_frame.loc[in_reference, column]), minlength=bins.size)
            window = _window_counts(
                day_index[in_live], bins.codes(live.loc[in_live, column]), n_days, bins.size, rule.window_days
            )
            rows.append(
                pd.DataFrame(
                    {
                        "day": calendar,
                        "segment": segment,
                        "column": column,
                        "kind": "score" if column in SCORES else "feature",
                        "rows": window.sum(axis=1).astype(np.int64),
                        "reference_rows": int(in_reference.sum()),
                        "psi": psi(ref_counts[None, :].astype(float), window),
                        "p_value": homogeneity_p_value(ref_counts[None, :].astype(float), window),
                    }
                )
            )
    cells = pd.concat(rows, ignore_index=True)
    cells["judged"] = cells["rows"] >= rule.min_rows
    tests = int(cells["judged"].sum())
    alpha = rule.family_alpha / max(tests, 1)
    cells["drifted"] = cells["judged"] & (cells["p_value"] < alpha) & (cells["psi"] >= rule.min_psi)
    return DriftResult(cells=cells, tests=tests, alpha_per_test=alpha)


def drift_summary(result: DriftResult) -> pd.DataFrame:
    """Per drifted (segment, column): the first day it drifted, on how many days, and its largest PSI."""
    drifted = result.drifted()
    if drifted.empty:
        return pd.DataFrame(columns=["segment", "column", "kind", "first_day", "days", "max_psi"])
    grouped = drifted.groupby(["segment", "column", "kind"], sort=False)
    summary = grouped.agg(first_day=("day", "min"), days=("day", "size"), max_psi=("psi", "max")).reset_index()
    return summary.sort_values(["first_day", "max_psi"], ascending=[True, False], ignore_index=True)
