"""The monitoring report's plots as PNG bytes: drift by day, scores by day, vintages, profit, live uplift."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

from tala_ray.monitoring.drift import ALL, DriftResult, drift_summary
from tala_ray.monitoring.live_uplift import LiveUplift

HEATMAP_ROWS = 14
ALERT_COLOUR = "#c0392b"


def _figure(width: float, height: float, rows: int = 1) -> tuple[Any, np.ndarray]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(rows, 1, figsize=(width, height * rows), dpi=100, squeeze=False)
    return figure, axes[:, 0]


def _png(figure: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def drift_segment(drift: DriftResult) -> str:
    """The segment to show: where drift was first seen (all countries without drift)."""
    summary = drift_summary(drift)
    return str(summary.iloc[0]["segment"]) if len(summary) else ALL


def drift_png(drift: DriftResult) -> bytes:
    """Heatmap of each column's drift by day in one segment: the test's -log10 p over the alert
    level's (1 = the alert threshold), drifted cells marked."""
    segment = drift_segment(drift)
    cells = drift.cells[drift.cells["segment"] == segment].copy()
    level = -np.log10(drift.alpha_per_test)
    cells["strength"] = np.where(cells["judged"], -np.log10(np.maximum(cells["p_value"], 1e-300)) / level, np.nan)
    top = cells.groupby("column")["strength"].max().sort_values(ascending=False).head(HEATMAP_ROWS).index
    grid = cells[cells["column"].isin(top)].pivot(index="column", columns="day", values="strength").loc[top]
    marks = cells[cells["column"].isin(top)].pivot(index="column", columns="day", values="drifted").loc[top]
    figure, (axes,) = _figure(11, 0.32 * len(top) + 1.8)
    image = axes.imshow(np.clip(grid.to_numpy(float), 0, 2), aspect="auto", cmap="Reds", vmin=0, vmax=2)
    rows, columns = np.nonzero(marks.to_numpy(bool))
    axes.scatter(columns, rows, marker="x", color="black", s=12, label="drift alert")
    days = list(grid.columns)
    ticks = list(range(0, len(days), max(1, len(days) // 12)))
    axes.set_xticks(ticks, [f"{days[i]:%m-%d}" for i in ticks])
    axes.set_yticks(range(len(top)), list(top), fontsize=8)
    summary = drift_summary(drift)
    if len(summary):
        first = list(days).index(summary.iloc[0]["first_day"])
        axes.axvline(first - 0.5, color=ALERT_COLOUR, linestyle="--", label=f"first alert {days[first]:%Y-%m-%d}")
        axes.legend(loc="lower left", fontsize=8)
    axes.set_title(f"Drift against the training reference, {segment} (1 = alert threshold at that day's sample size)")
    figure.colorbar(image, ax=axes, fraction=0.025, pad=0.01)
    return _png(figure)


def scores_png(decisions: pd.DataFrame, reference_mean_pd: dict[str, float]) -> bytes:
    """Daily mean predicted PD per country, against each country's reference mean (dashed)."""
    figure, (axes,) = _figure(11, 3.4)
    daily = decisions.groupby(["day", "country"])["default_probability"].mean().unstack()
    for index, country in enumerate(daily.columns):
        colour = f"C{index}"
        axes.plot(daily.index, daily[country], color=colour, label=country)
        if country in reference_mean_pd:
            axes.axhline(reference_mean_pd[country], color=colour, linestyle="--", linewidth=0.8)
    axes.set(ylabel="mean predicted PD", title="Credit scores by day (dashed: training reference)")
    axes.legend(ncol=4, fontsize=8)
    return _png(figure)


def vintages_png(estimated: pd.DataFrame, realized: pd.DataFrame, reference_auc: float) -> bytes:
    """Per vintage: realized default rate (95% CI) against predicted and estimated-before-labels; AUC
    realized (with its standard error) against estimated."""
    figure, (rates, aucs) = _figure(11, 3.3, rows=2)
    overall = realized[realized["segment"] == ALL]
    known = overall[overall["labelled"] > 0]
    errors = np.vstack([known["default_rate"] - known["ci_low"], known["ci_high"] - known["default_rate"]])
    rates.errorbar(known["vintage"], known["default_rate"], yerr=errors, fmt="o", capsize=3, label="realized (95% CI)")
    rates.plot(known["vintage"], known["predicted_rate"], "s--", label="predicted for those loans")
    rates.plot(estimated["vintage"], estimated["expected_default_rate"], ":", label="estimated before labels")
    rates.set(ylabel="default rate of loans", title="Vintages (week of decision): default rate")
    rates.legend(fontsize=8)
    with_auc = known[known["auc"].notna()]
    aucs.errorbar(
        with_auc["vintage"], with_auc["auc"], yerr=1.96 * with_auc["auc_se"], fmt="o", capsize=3, label="realized AUC"
    )
    aucs.plot(with_auc["vintage"], with_auc["estimated_auc_same_loans"], "s--", label="estimated, same loans")
    aucs.plot(estimated["vintage"], estimated["estimated_auc"], ":", label="estimated, all scored")
    aucs.axhline(reference_auc, color="grey", linewidth=0.8, label="reference (estimated)")
    aucs.set(ylabel="AUC", title="Vintages: discrimination")
    aucs.legend(fontsize=8)
    return _png(figure)


def profit_png(realized: pd.DataFrame) -> bytes:
    """Per vintage: realized and expected profit per application (USD), the gap shaded."""
    figure, (axes,) = _figure(11, 3.2)
    overall = realized[(realized["segment"] == ALL) & (realized["labelled"] > 0)]
    x = overall["vintage"]
    axes.plot(x, overall["expected_profit_per_application_usd"], "s--", label="expected at decision")
    axes.plot(x, overall["realized_profit_per_application_usd"], "o-", color=ALERT_COLOUR, label="realized")
    axes.fill_between(
        x,
        overall["realized_profit_per_application_usd"],
        overall["expected_profit_per_application_usd"],
        color=ALERT_COLOUR,
        alpha=0.15,
    )
    axes.set(ylabel="USD per application", title="What it costs: profit per application by vintage")
    axes.legend(fontsize=8)
    return _png(figure)


def uplift_png(uplift: LiveUplift) -> bytes:
    """The targeting operator curve on the exploration bucket."""
    figure, (axes,) = _figure(6, 3.6)
    axes.plot(uplift.curve_q, uplift.curve_toc, marker="o")
    axes.axhline(0.0, linestyle=":", color="grey")
    axes.set(
        xlabel="share of explored loans targeted (highest predicted uplift first)",
        ylabel="repayment gain above average",
        title=f"Live uplift: {uplift.weighting} RATE {uplift.rate:.4f} [{uplift.rate_low:.4f}, {uplift.rate_high:.4f}]",
    )
    return _png(figure)
