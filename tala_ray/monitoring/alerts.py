"""The monitor's checks: each PASS, ALERT or SKIP (nothing to judge yet), with its figures."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from tala_ray.monitoring.config import MonitorConfig
from tala_ray.monitoring.drift import DriftResult, drift_summary
from tala_ray.monitoring.live_uplift import LiveUplift

Status = Literal["PASS", "ALERT", "SKIP"]
SHOWN = 4  # drifted columns named in a summary line


class Check(BaseModel):
    """One check of the report."""

    name: str
    model: Literal["credit", "uplift", "inputs"] = Field(description="What it judges: a model, or both models' inputs.")
    status: Status
    since: date | None = Field(None, description="The first day (or vintage) that broke the rule.")
    summary: str
    details: list[dict[str, Any]] = Field(default_factory=list)

    def line(self) -> str:
        return f"{self.status:<5}  {self.name}: {self.summary}"


def _day(value: Any) -> date:
    return pd.Timestamp(value).date()


DRIFT_CHECKS = (  # name, model judged, which drift cells
    ("feature drift", "inputs", lambda rows: rows["kind"] == "feature"),
    ("credit score drift", "credit", lambda rows: rows["column"] == "default_probability"),
    ("uplift score drift", "uplift", lambda rows: rows["column"] == "uplift"),
)


def _drift_checks(drift: DriftResult, config: MonitorConfig) -> list[Check]:
    summary = drift_summary(drift)
    rule = f"{drift.tests:,} tests at alpha {drift.alpha_per_test:.1e} each, PSI >= {config.drift.min_psi}"
    checks = []
    for name, model, selects in DRIFT_CHECKS:
        rows = summary[selects(summary)]
        if not drift.tests:
            checks.append(Check(name=name, model=model, status="SKIP", summary="no day with enough decisions"))
            continue
        if rows.empty:
            checks.append(Check(name=name, model=model, status="PASS", summary=f"no drift ({rule})"))
            continue
        first = rows.iloc[0]
        shown = ", ".join(f"{r.column} in {r.segment} (PSI {r.max_psi:.2f})" for r in rows.head(SHOWN).itertuples())
        segments = ", ".join(sorted(rows["segment"].unique()))
        checks.append(
            Check(
                name=name,
                model=model,
                status="ALERT",
                since=_day(first.first_day),
                summary=f"{rows['column'].nunique()} column(s) drifted in {segments} since {_day(first.first_day)}: "
                f"{shown} ({rule})",
                details=rows.assign(first_day=rows["first_day"].map(_day)).to_dict("records"),
            )
        )
    return checks


def _estimated_check(estimated: pd.DataFrame, reference_auc: float, config: MonitorConfig) -> Check:
    judged = estimated[estimated["judged"]]
    name = "estimated AUC (before labels)"
    if judged.empty:
        return Check(name=name, model="credit", status="SKIP", summary="no week with enough scored applications")
    floor = reference_auc - config.estimated.max_auc_drop
    low = judged[judged["estimated_auc"] < floor]
    worst = judged.loc[judged["estimated_auc"].idxmin()]
    figures = (
        f"lowest week {_day(worst.vintage)}: {worst.estimated_auc:.3f}; "
        f"reference {reference_auc:.3f}, floor {floor:.3f}"
    )
    if low.empty:
        return Check(name=name, model="credit", status="PASS", summary=figures)
    return Check(name=name, model="credit", status="ALERT", since=_day(low["vintage"].min()), summary=figures)


def _realized_checks(realized: pd.DataFrame) -> list[Check]:
    checks = []
    judged = realized[realized["judged"]] if len(realized) else realized
    for flag, name, describe in (
        ("rate_alert", "realized default rate", _rate_text),
        ("auc_alert", "realized AUC", _auc_text),
    ):
        if judged.empty:
            checks.append(
                Check(name=name, model="credit", status="SKIP", summary="no vintage with enough matured loans")
            )
            continue
        broken = judged[judged[flag]].sort_values("vintage")
        if broken.empty:
            checks.append(
                Check(name=name, model="credit", status="PASS", summary=f"{len(judged)} vintage(s) judged, none off")
            )
            continue
        shown = "; ".join(describe(r) for r in broken.head(SHOWN).itertuples())
        checks.append(
            Check(
                name=name,
                model="credit",
                status="ALERT",
                since=_day(broken["vintage"].min()),
                summary=f"{len(broken)} of {len(judged)} vintage(s): {shown}",
            )
        )
    return checks


def _rate_text(row: Any) -> str:
    return (
        f"{_day(row.vintage)} {row.segment}: realized {row.default_rate:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}] "
        f"vs predicted {row.predicted_rate:.3f} (p {row.rate_p_value:.1e})"
    )


def _auc_text(row: Any) -> str:
    return f"{_day(row.vintage)} {row.segment}: realized {row.auc:.3f} vs estimated {row.estimated_auc_same_loans:.3f}"


def _uplift_checks(uplift: LiveUplift | None, config: MonitorConfig) -> list[Check]:
    names = (f"live uplift ({uplift.weighting if uplift else config.uplift.weighting} RATE)", "policy value vs none")
    if uplift is None:
        why = f"fewer than {config.uplift.min_rows} matured loans in the exploration bucket"
        return [Check(name=name, model="uplift", status="SKIP", summary=why) for name in names]
    rate_text = f"{uplift.rate:.4f} [{uplift.rate_low:.4f}, {uplift.rate_high:.4f}] on {uplift.loans:,} explored loans"
    gain_text = f"{uplift.policy_gain_usd:+.3f} USD a loan [{uplift.gain_low:+.3f}, {uplift.gain_high:+.3f}]"
    return [
        Check(
            name=names[0],
            model="uplift",
            status="ALERT" if uplift.rate_high < config.uplift.min_rate else "PASS",
            summary=f"{rate_text} (alert below {config.uplift.min_rate})",
        ),
        Check(
            name=names[1],
            model="uplift",
            status="ALERT" if uplift.gain_high < config.uplift.min_policy_gain_usd else "PASS",
            summary=f"{gain_text} (alert below {config.uplift.min_policy_gain_usd})",
        ),
    ]


def all_checks(
    drift: DriftResult,
    estimated: pd.DataFrame,
    reference_auc: float,
    realized: pd.DataFrame,
    uplift: LiveUplift | None,
    config: MonitorConfig,
) -> list[Check]:
    """Every check of the report, in a fixed order."""
    return [
        *_drift_checks(drift, config),
        _estimated_check(estimated, reference_auc, config),
        *_realized_checks(realized),
        *_uplift_checks(uplift, config),
    ]


def exit_code(checks: list[Check]) -> int:
    """0 without alerts, 1 with any (2, bad input, is the CLI's)."""
    return int(any(check.status == "ALERT" for check in checks))
