"""The outcome feed consumed up to a moment, and joined to the decisions by application id.

Outcome files arrive one directory per delivery day (`release_day=YYYY-MM-DD`, see
`tala_ray.data.outcomes`). Everything delivered by `as_of` is read; an application's outcome counts
once whatever the feed did (late, delivered twice): the first delivery wins, and a later one that
disagrees with it is counted as a conflict. The join keeps every decision and says, for each loan,
whether its outcome window has closed (30 days past due: the outcome is final) and whether its
outcome has arrived; it is written as Parquet next to the report, so the labels are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from tala_ray.core.errors import UserError
from tala_ray.core.storage import join_path, resolve_filesystem
from tala_ray.data.outcomes import OUTCOMES, RELEASE_PARTITION, WRITE_OFF_DAYS_LATE

JOINED_FILE = "outcomes_joined.parquet"


@dataclass(frozen=True)
class OutcomeFeed:
    """The outcomes known at `as_of`: one row per application, and what the feed did to get there."""

    frame: pd.DataFrame
    delivered: int  # records read
    duplicates: int  # records of an application already counted
    conflicts: int  # of those, records that disagree with the first
    late: int  # counted outcomes delivered a day or more after they were known


def _release_days(filesystem: pafs.FileSystem, root: str) -> list[tuple[str, str]]:
    prefix = f"{RELEASE_PARTITION}="
    infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=False))
    return sorted(
        (info.base_name[len(prefix) :], info.path)
        for info in infos
        if info.type == pafs.FileType.Directory and info.base_name.startswith(prefix)
    )


def no_outcomes() -> OutcomeFeed:
    """The feed before any outcome arrived."""
    return OutcomeFeed(OUTCOMES.empty_table().to_pandas(), 0, 0, 0, 0)


def read_outcomes(uri: str, as_of: pd.Timestamp) -> OutcomeFeed:
    """The outcomes delivered at or before `as_of` under `uri`, each application once."""
    filesystem, root = resolve_filesystem(uri)
    if filesystem.get_file_info(root).type != pafs.FileType.Directory:
        raise UserError(f"outcomes: no outcome files at {uri!r}")
    days = [path for day, path in _release_days(filesystem, root) if day <= f"{as_of:%Y-%m-%d}"]
    files = [
        info.path
        for day in days
        for info in filesystem.get_file_info(pafs.FileSelector(day))
        if info.type == pafs.FileType.File and info.base_name.endswith(".parquet")
    ]
    if not files:
        return no_outcomes()
    try:
        table = pads.dataset(files, filesystem=filesystem, format="parquet", schema=OUTCOMES).to_table()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise UserError(f"outcomes: files under {uri!r} do not follow the outcome schema ({error})") from None
    records = table.to_pandas()
    records = records[records["delivered_time"] <= as_of]
    records = records.sort_values(["delivered_time", "application_id"], kind="stable")
    first = records.drop_duplicates("application_id", keep="first")
    again = records[records["application_id"].duplicated(keep="first")]
    disagree = again.merge(first[["application_id", "defaulted"]], on="application_id", suffixes=("", "_first"))
    late = first["delivered_time"] - first["known_time"] >= pd.Timedelta(days=1)
    return OutcomeFeed(
        frame=first.reset_index(drop=True),
        delivered=len(records),
        duplicates=len(again),
        conflicts=int((disagree["defaulted"] != disagree["defaulted_first"]).sum()),
        late=int(late.sum()),
    )


def join_outcomes(decisions: pd.DataFrame, outcomes: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Every decision with its loan's outcome where known: `matured` (the loan's outcome window closed
    by `as_of`), `known` (its outcome arrived) and `defaulted` (0/1, NaN until known)."""
    columns = ["application_id", "defaulted", "days_late", "known_time", "delivered_time"]
    joined = decisions.merge(outcomes[columns], on="application_id", how="left", validate="one_to_one")
    due = joined["time"] + pd.to_timedelta(joined["term_days"], unit="D")
    joined["matured"] = joined["lent"] & (due + pd.Timedelta(days=WRITE_OFF_DAYS_LATE) <= as_of)
    joined["known"] = joined["lent"] & joined["defaulted"].notna()
    joined["defaulted"] = joined["defaulted"].where(joined["lent"]).astype(float)
    return joined


def is_labelled(joined: pd.DataFrame) -> pd.Series:
    """Whether each decision is a loan whose outcome is final and known: what realized performance is
    measured on (`matured` implies lent)."""
    return joined["matured"] & joined["known"]


def labelled(joined: pd.DataFrame) -> pd.DataFrame:
    """The loans whose outcome is final and known."""
    return joined[is_labelled(joined)]


def write_joined(joined: pd.DataFrame, out: str) -> str:
    """The joined decisions and outcomes as one Parquet file under `out` (written whole, then renamed
    into place on a local disk); returns its path."""
    filesystem, root = resolve_filesystem(out)
    filesystem.create_dir(root, recursive=True)
    path = join_path(root, JOINED_FILE)
    table = pa.Table.from_pandas(joined.reset_index(drop=True), preserve_index=False)
    if not isinstance(filesystem, pafs.LocalFileSystem):
        pq.write_table(table, path, filesystem=filesystem)
        return path
    temporary = join_path(root, f".{JOINED_FILE}.tmp")
    pq.write_table(table, temporary, filesystem=filesystem)
    filesystem.move(temporary, path)
    return path


def unmatched(decisions: pd.DataFrame, outcomes: pd.DataFrame) -> int:
    """Outcomes of applications the log never decided (another system's loans, or a lost log row)."""
    return int((~np.isin(outcomes["application_id"].to_numpy(), decisions["application_id"].to_numpy())).sum())
