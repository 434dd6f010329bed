"""`tala-ray monitor`: the prediction log and the outcomes known at `as_of`, judged against the
training reference; every figure the report, the plots and the metrics are made of."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from tala_ray.core.errors import UserError
from tala_ray.monitoring.alerts import Check, all_checks
from tala_ray.monitoring.config import MonitorConfig
from tala_ray.monitoring.decisions import SCORES, Decisions, decisions_from_log
from tala_ray.monitoring.drift import DriftResult, drift_by_day
from tala_ray.monitoring.estimated import calibrator, estimated_by_vintage, reference_auc
from tala_ray.monitoring.live_uplift import LiveUplift, live_uplift
from tala_ray.monitoring.outcomes import OutcomeFeed, join_outcomes, no_outcomes, read_outcomes, unmatched
from tala_ray.monitoring.prediction_log import read_prediction_log
from tala_ray.monitoring.realized import realized_by_vintage
from tala_ray.monitoring.reference import Reference, read_reference


@dataclass(frozen=True)
class MonitorResult:
    """Everything the monitor found."""

    as_of: pd.Timestamp
    decisions: Decisions
    feed: OutcomeFeed
    unmatched_outcomes: int
    joined: pd.DataFrame
    drift: DriftResult
    reference_rows: int
    reference_auc: float
    reference_means: dict[str, float]  # mean predicted PD of the reference, per country
    estimated: pd.DataFrame
    realized: pd.DataFrame
    uplift: LiveUplift | None
    checks: list[Check]


def as_utc(moment: datetime | str | None) -> pd.Timestamp:
    """A moment as a UTC timestamp (naive: UTC; None: now)."""
    try:
        stamp = pd.Timestamp(moment if moment is not None else datetime.now(UTC))
    except ValueError as error:
        raise UserError(f"as_of: not an ISO date/time: {moment!r}") from error
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def monitor_frames(
    log: pd.DataFrame, reference: Reference, feed: OutcomeFeed, as_of: pd.Timestamp, config: MonitorConfig
) -> MonitorResult:
    """Judge the decisions of `log` made by `as_of` (and the outcomes of `feed`) against `reference`."""
    decisions = decisions_from_log(log)
    seen = decisions.frame["time"] <= as_of
    if not seen.any():
        raise UserError(f"as_of: no decision was made by {as_of:%Y-%m-%d %H:%M} (the log starts later)")
    decisions = Decisions(
        frame=decisions.frame[seen].reset_index(drop=True),
        features=decisions.features[seen.to_numpy()].reset_index(drop=True),
        duplicates=decisions.duplicates,
    )
    frame = decisions.frame
    joined = join_outcomes(frame, feed.frame, as_of)
    live = pd.concat([decisions.features, frame[list(SCORES)]], axis=1)
    drift = drift_by_day(reference, live, frame["day"], config.drift)
    calibrate = calibrator(reference, config.estimated.calibrate)
    estimated = estimated_by_vintage(frame, calibrate, config.estimated, config.realized.confidence)
    ref_auc = reference_auc(reference, calibrate)
    realized = realized_by_vintage(joined, config.realized, config.economics, calibrate)
    uplift = live_uplift(joined, config.uplift, config.economics)
    return MonitorResult(
        as_of=as_of,
        decisions=decisions,
        feed=feed,
        unmatched_outcomes=unmatched(frame, feed.frame),
        joined=joined,
        drift=drift,
        reference_rows=len(reference),
        reference_auc=ref_auc,
        reference_means=reference.scores["default_probability"].groupby(reference.features["country"]).mean().to_dict(),
        estimated=estimated,
        realized=realized,
        uplift=uplift,
        checks=all_checks(drift, estimated, ref_auc, realized, uplift, config),
    )


def run_monitor(
    log_uri: str, reference_uri: str, outcomes_uri: str | None, as_of: datetime | str | None, config: MonitorConfig
) -> MonitorResult:
    """Read the prediction log, the reference and the outcome feed, and judge them."""
    moment = as_utc(as_of)
    reference = read_reference(reference_uri)
    feed = read_outcomes(outcomes_uri, moment) if outcomes_uri else no_outcomes()
    return monitor_frames(read_prediction_log(log_uri), reference, feed, moment, config)
