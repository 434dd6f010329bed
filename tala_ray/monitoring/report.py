"""The monitor's report: the headline (which model drifted, since when, what it costs), the checks and
the tables behind them, as a JSON-ready model and as Markdown."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from tala_ray.monitoring.alerts import Check
from tala_ray.monitoring.config import MonitorConfig
from tala_ray.monitoring.drift import ALL, drift_summary
from tala_ray.monitoring.live_uplift import LiveUplift
from tala_ray.monitoring.monitor import MonitorResult
from tala_ray.monitoring.outcomes import is_labelled
from tala_ray.monitoring.realized import profits_usd

DRIFT_ROWS = 25  # drifted (segment, column) pairs listed in the report
MODEL_NAMES = {"credit": "credit model", "uplift": "uplift model"}


class Cost(BaseModel):
    """What the alerted period cost: realized against expected profit (USD) of the applications whose
    result is known, and the expected profit per application before and after."""

    applications: int
    realized_per_application_usd: float | None
    expected_per_application_usd: float | None
    shortfall_usd: float | None = Field(description="Realized minus expected profit, summed (negative: a loss).")
    expected_before_usd: float | None = Field(description="Expected profit per application before the alert.")
    expected_after_usd: float | None = Field(description="...and since: what the models themselves foresee.")


class Headline(BaseModel):
    status: Literal["PASS", "ALERT"]
    text: str
    models: list[str] = Field(description="The models alerted (inputs drifting alone: both).")
    where: str | None = Field(None, description="The countries where drift was seen.")
    since: date | None
    cost: Cost | None


class MonitorReport(BaseModel):
    """The whole `report.json`."""

    as_of: datetime
    first_day: date
    last_day: date
    decisions: int
    duplicate_decisions: int
    model_versions: dict[str, list[str]]
    outcomes: dict[str, int]
    reference_rows: int
    reference_auc: float
    headline: Headline
    checks: list[Check]
    drift: dict[str, Any]
    estimated: list[dict[str, Any]]
    realized: list[dict[str, Any]]
    live_uplift: LiveUplift | None
    files: dict[str, str] = Field(default_factory=dict)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: timestamps as dates, NaN as None, numpy scalars as Python's."""
    out = []
    for row in frame.to_dict("records"):
        clean = {}
        for key, value in row.items():
            if isinstance(value, pd.Timestamp):
                value = value.date()
            elif isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and math.isnan(value):
                value = None
            clean[key] = value
        out.append(clean)
    return out


def _model_names(result: MonitorResult, kinds: list[str]) -> list[str]:
    """The models alerted, with the version that decided most; drift of the inputs alone names both."""
    versions = result.decisions.model_versions
    judged = [kind for kind in MODEL_NAMES if kind in kinds] or list(MODEL_NAMES)
    names = []
    for kind in judged:
        shown = versions.get(kind, [])
        names.append(f"{MODEL_NAMES[kind]} {shown[0]}" if shown else MODEL_NAMES[kind])
    return names


def _where(result: MonitorResult) -> str:
    """Where drift was seen: the countries, or all of them."""
    segments = set(drift_summary(result.drift)["segment"]) - {ALL}
    countries = set(result.decisions.frame["country"])
    return "all countries" if not segments or segments >= countries else ", ".join(sorted(segments))


def _cost(result: MonitorResult, since: date, config: MonitorConfig) -> Cost:
    joined = result.joined
    after = joined["time"].dt.date >= since
    known = ~joined["lent"] | is_labelled(joined)
    settled = joined[after & known]
    expected_now = profits_usd(joined, joined["pd_served"], config.economics)
    before = expected_now[~after.to_numpy()]
    if not is_labelled(settled).any():  # declined applications alone say nothing of the loans' cost
        realized = expected = shortfall = None
    else:
        realized_each = profits_usd(settled, settled["defaulted"].fillna(0.0), config.economics)
        expected_each = profits_usd(settled, settled["pd_served"], config.economics)
        realized, expected = float(realized_each.mean()), float(expected_each.mean())
        shortfall = float((realized_each - expected_each).sum())
    return Cost(
        applications=len(settled),
        realized_per_application_usd=realized,
        expected_per_application_usd=expected,
        shortfall_usd=shortfall,
        expected_before_usd=float(before.mean()) if len(before) else None,
        expected_after_usd=float(expected_now[after.to_numpy()].mean()) if after.any() else None,
    )


def headline(result: MonitorResult, config: MonitorConfig) -> Headline:
    """One sentence a person reads first: which model, since when (the first day drift was seen, else
    the first vintage off), on what, at what cost."""
    alerts = [check for check in result.checks if check.status == "ALERT"]
    if not alerts:
        text = f"No alert: {len(result.checks)} checks passed or had nothing to judge yet."
        return Headline(status="PASS", text=text, models=[], since=None, cost=None)
    kinds = list(dict.fromkeys(check.model for check in alerts))
    daily = [check.since for check in alerts if check.since is not None and "drift" in check.name]
    since = min(daily or [check.since for check in alerts if check.since is not None])
    models = _model_names(result, kinds)
    cost = _cost(result, since, config)
    drifted = drift_summary(result.drift)
    what = ", ".join(f"{r.column} ({r.segment})" for r in drifted.head(3).itertuples()) if len(drifted) else ""
    parts = [f"{len(alerts)} alert(s) since {since}"]
    if what:
        parts.append(f"drifted first: {what}")
    if cost.shortfall_usd is not None:
        parts.append(
            f"realized profit {cost.realized_per_application_usd:.2f} vs expected "
            f"{cost.expected_per_application_usd:.2f} USD per application since then "
            f"({cost.shortfall_usd:+,.0f} USD over {cost.applications:,} applications with known results)"
        )
    elif cost.expected_after_usd is not None and cost.expected_before_usd is not None:
        parts.append(
            f"outcomes not known yet; expected profit per application {cost.expected_before_usd:.2f} USD "
            f"before, {cost.expected_after_usd:.2f} since"
        )
    where = _where(result) if len(drifted) else None
    text = "; ".join(parts) + "."
    return Headline(status="ALERT", text=text, models=models, where=where, since=since, cost=cost)


def build_report(result: MonitorResult, config: MonitorConfig) -> MonitorReport:
    """The report of a monitor run (files are filled in when they are written)."""
    frame, feed = result.decisions.frame, result.feed
    drifted = drift_summary(result.drift)
    return MonitorReport(
        as_of=result.as_of.to_pydatetime(),
        first_day=frame["day"].min().date(),
        last_day=frame["day"].max().date(),
        decisions=len(frame),
        duplicate_decisions=result.decisions.duplicates,
        model_versions=result.decisions.model_versions,
        outcomes={
            "delivered": feed.delivered,
            "counted": len(feed.frame),
            "duplicates": feed.duplicates,
            "conflicts": feed.conflicts,
            "late": feed.late,
            "without_decision": result.unmatched_outcomes,
            "labelled_loans": int(is_labelled(result.joined).sum()),
        },
        reference_rows=result.reference_rows,
        reference_auc=result.reference_auc,
        headline=headline(result, config),
        checks=result.checks,
        drift={
            "window_days": config.drift.window_days,
            "tests": result.drift.tests,
            "alpha_per_test": result.drift.alpha_per_test,
            "drifted": records(drifted.head(DRIFT_ROWS)),
            "drifted_pairs": len(drifted),
        },
        estimated=records(result.estimated),
        realized=records(result.realized),
        live_uplift=result.uplift,
    )


def _table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    def cell(value: Any) -> str:
        if value is None:
            return ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return lines


def markdown(report: MonitorReport) -> str:
    """The report as Markdown."""
    lines = [
        f"# Monitoring report, as of {report.as_of:%Y-%m-%d %H:%M} UTC",
        "",
        f"**{report.headline.status}**"
        + (f" ({', '.join(report.headline.models)})" if report.headline.models else "")
        + f": {report.headline.text}",
        "",
        f"{report.decisions:,} decisions from {report.first_day} to {report.last_day} "
        f"({report.duplicate_decisions} repeated decisions counted once); reference: {report.reference_rows:,} rows, "
        f"estimated AUC {report.reference_auc:.3f}. Outcomes: "
        + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in report.outcomes.items())
        + ".",
        "",
        "## Checks",
        "",
        *[f"- `{check.status}` **{check.name}**: {check.summary}" for check in report.checks],
        "",
        f"## Drift (windows of {report.drift['window_days']} days, {report.drift['tests']:,} tests)",
        "",
        *(_table(report.drift["drifted"], ["segment", "column", "kind", "first_day", "days", "max_psi"]) or []),
        "",
        "## Estimated performance before labels (per week of decision)",
        "",
        *_table(
            report.estimated,
            ["vintage", "scored", "estimated_auc", "loans", "expected_default_rate", "estimated_auc_loans"],
        ),
        "",
        "## Realized performance (all countries, per vintage)",
        "",
        *_table(
            [row for row in report.realized if row["segment"] == "all"],
            [
                "vintage",
                "approval_rate",
                "labelled",
                "default_rate",
                "ci_low",
                "ci_high",
                "predicted_rate",
                "auc",
                "estimated_auc_same_loans",
                "ks",
                "calibration_error",
                "realized_profit_per_application_usd",
                "expected_profit_per_application_usd",
            ],
        ),
        "",
    ]
    uplift = report.live_uplift
    if uplift is not None:
        lines += [
            "## Live uplift (exploration bucket)",
            "",
            f"{uplift.loans:,} explored loans, {uplift.treated_share:.0%} given the intervention. "
            f"{uplift.weighting} RATE {uplift.rate:.4f} [{uplift.rate_low:.4f}, {uplift.rate_high:.4f}]; "
            f"the policy's gain over no intervention {uplift.policy_gain_usd:+.3f} USD a loan "
            f"[{uplift.gain_low:+.3f}, {uplift.gain_high:+.3f}].",
            "",
        ]
    if report.files:
        lines += ["## Files", "", *[f"- {name}: `{path}`" for name, path in report.files.items()], ""]
    return "\n".join(lines)
