"""Loan outcomes of the live period: the potential outcomes (truth) and their release when known.

A loan lent at the application is due `term_days` later. Repaid, its outcome is known the day it is
repaid (due date + days late); not repaid `WRITE_OFF_DAYS_LATE` days after the due date, it is a
default, known then. So an outcome arrives 14 to 90 days after the decision.

Which outcome a loan has depends on what was served (the intervention lowers or raises the default
probability), so the world keeps both potential outcomes (one uniform draw against each option's
true PD), and `release_outcomes` turns them and the decisions served into outcome records, each with
the day it is delivered. Like a real feed, a share arrives late (days after it was known) and a share
is delivered twice (a retried delivery): a consumer counts each application once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs
from pydantic import BaseModel, ConfigDict, Field

from tala_ray.core.errors import UserError
from tala_ray.core.storage import join_path, resolve_filesystem
from tala_ray.data import schema
from tala_ray.data.world import DAY_MS, Simulation

WRITE_OFF_DAYS_LATE = 30  # a loan not repaid this many days after its due date is a default
RELEASE_PARTITION = "release_day"  # outcome files: <root>/release_day=YYYY-MM-DD/part-00000.parquet

POTENTIAL_OUTCOMES = pa.schema(
    [
        pa.field("application_id", pa.int64(), nullable=False),
        pa.field("applicant_id", pa.int64(), nullable=False),
        pa.field("application_time", schema.TS, nullable=False),
        pa.field("due_time", schema.TS, nullable=False),  # the application time plus the term
        pa.field("defaulted_control", pa.int8(), nullable=False),  # the outcome without the intervention
        pa.field("defaulted_treated", pa.int8(), nullable=False),  # ...and with it
        pa.field("days_late", pa.int32(), nullable=False),  # days after the due date it is repaid, if it is
        pa.field("affected", pa.bool_(), nullable=False),  # the scenario's change reaches this application
    ]
)

OUTCOMES = pa.schema(
    [
        pa.field("application_id", pa.int64(), nullable=False),
        pa.field("applicant_id", pa.int64(), nullable=False),
        pa.field("due_time", schema.TS, nullable=False),
        pa.field("defaulted", pa.int8(), nullable=False),
        pa.field("days_late", pa.int32(), nullable=False),  # WRITE_OFF_DAYS_LATE for a default
        pa.field("known_time", schema.TS, nullable=False),  # due time + days late: when the outcome is known
        pa.field("delivered_time", schema.TS, nullable=False),  # when the feed delivers it (late: after known_time)
    ]
)


class Delivery(BaseModel):
    """How the outcome feed misbehaves: late and duplicated deliveries (deterministic in `seed`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    late_share: float = Field(0.03, ge=0.0, le=1.0, description="Share of outcomes delivered after they are known.")
    max_late_days: int = Field(10, ge=1, description="A late outcome arrives 1 to this many days after it is known.")
    duplicate_share: float = Field(0.02, ge=0.0, le=1.0, description="Share of outcomes delivered a second time.")
    seed: int = Field(0, ge=0)


def potential_outcomes_table(sim: Simulation, affected: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """Both potential outcomes of each application of a simulated chunk (the same draw against the
    true PD without and with the intervention) and the days late of a repayment."""
    a, o = sim.applicants, sim.outcomes
    n = len(a.ids)
    discipline_late = 1.0 + 4.0 / (1.0 + np.exp(a.discipline))
    days_late = np.minimum(rng.poisson(discipline_late) * (rng.random(n) < 0.4), WRITE_OFF_DAYS_LATE - 1)
    ts = lambda ms: pa.array(ms, pa.int64()).cast(schema.TS)  # noqa: E731
    return pa.table(
        {
            "application_id": sim.tables["applications"].column("application_id"),
            "applicant_id": a.ids,
            "application_time": ts(a.app_time),
            "due_time": ts(a.app_time + o.term_days.astype(np.int64) * DAY_MS),
            "defaulted_control": (o.default_draw < o.pd_control).astype(np.int8),
            "defaulted_treated": (o.default_draw < o.pd_treated).astype(np.int8),
            "days_late": days_late.astype(np.int32),
            "affected": affected,
        },
        schema=POTENTIAL_OUTCOMES,
    )


def release_outcomes(potential: pd.DataFrame, served: pd.DataFrame, delivery: Delivery | None = None) -> pd.DataFrame:
    """The outcome records of the loans lent: `served` has one row per decided application
    (`application_id`, `lent`, `treated`); each lent loan gets the potential outcome of the option
    served, the time it is known and the time it is delivered (late and duplicated deliveries
    included, sorted by delivery time)."""
    delivery = delivery or Delivery()
    lent = served.loc[served["lent"].astype(bool), ["application_id", "treated"]]
    loans = lent.merge(potential, on="application_id", how="left", validate="one_to_one", indicator=True)
    unknown = int((loans.pop("_merge") != "both").sum())
    if unknown:
        raise UserError(f"served: {unknown} lent application(s) have no potential outcome in this world's live period")
    treated = loans["treated"].astype(bool).to_numpy()
    defaulted = np.where(treated, loans["defaulted_treated"], loans["defaulted_control"]).astype(np.int8)
    days_late = np.where(defaulted == 1, WRITE_OFF_DAYS_LATE, loans["days_late"]).astype(np.int32)
    known = loans["due_time"] + pd.to_timedelta(days_late, unit="D")
    rng = np.random.default_rng(delivery.seed)
    late = rng.random(len(loans)) < delivery.late_share
    delay = np.where(late, rng.integers(1, delivery.max_late_days + 1, len(loans)), 0)
    records = pd.DataFrame(
        {
            "application_id": loans["application_id"].to_numpy(np.int64),
            "applicant_id": loans["applicant_id"].to_numpy(np.int64),
            "due_time": loans["due_time"],
            "defaulted": defaulted,
            "days_late": days_late,
            "known_time": known,
            "delivered_time": known + pd.to_timedelta(delay, unit="D"),
        }
    )
    again = records[rng.random(len(records)) < delivery.duplicate_share].copy()
    again["delivered_time"] += pd.to_timedelta(rng.integers(1, 6, len(again)), unit="D")
    both = pd.concat([records, again], ignore_index=True)
    return both.sort_values(["delivered_time", "application_id"], kind="stable", ignore_index=True)


def write_release(outcomes: pd.DataFrame, out: str, overwrite: bool = False) -> dict[str, int]:
    """Write outcome records as one Parquet file per delivery day under `out`
    (`release_day=YYYY-MM-DD/part-00000.parquet`); returns rows per day."""
    filesystem, root = resolve_filesystem(out)
    info = filesystem.get_file_info(root)
    if info.type == pafs.FileType.File:
        raise UserError(f"out: {out!r} is a file; give a directory")
    if info.type == pafs.FileType.Directory and filesystem.get_file_info(pafs.FileSelector(root)):
        if not overwrite:
            raise UserError(f"out: {out!r} exists and is not empty; pass --overwrite to replace it")
        filesystem.delete_dir_contents(root)
    days = outcomes["delivered_time"].dt.strftime("%Y-%m-%d")
    written = {}
    for day, rows in outcomes.groupby(days, sort=True):
        directory = join_path(root, f"{RELEASE_PARTITION}={day}")
        filesystem.create_dir(directory, recursive=True)
        table = pa.Table.from_pandas(rows.reset_index(drop=True), schema=OUTCOMES, preserve_index=False)
        pq.write_table(table, join_path(directory, "part-00000.parquet"), filesystem=filesystem, compression="zstd")
        written[str(day)] = len(rows)
    return written
