"""A readable profile of a dataset spec's data: rows, target rate, per-column type, missing share,
cardinality and a summary of values."""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel, ConfigDict

from tala_ray.data.dataset_spec import LoadedDataset


class ColumnProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
    missing_share: float
    cardinality: int
    summary: str


class DatasetProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    rows: int
    quarantined: dict[str, int]
    target_column: str
    target_rate: float  # the bad rate of a binary target, the mean of a continuous one
    target_type: str = "binary"
    treated_share: float | None
    columns: list[ColumnProfile]


def _summary(values: pd.Series, kind: str) -> str:
    present = values.dropna()
    if present.empty:
        return "all missing"
    if kind == "numeric":
        return f"min {present.min():.4g}  median {present.median():.4g}  max {present.max():.4g}"
    top = present.value_counts().head(3)
    return "top: " + ", ".join(f"{value} ({count / len(values):.0%})" for value, count in top.items())


def profile_dataset(loaded: LoadedDataset) -> DatasetProfile:
    """Profile of the loaded rows (quarantined rows are counted by reason)."""
    reasons = loaded.quarantined["reason"].value_counts().to_dict() if len(loaded.quarantined) else {}
    columns = [
        ColumnProfile(
            name=name,
            kind=kind,
            missing_share=float(loaded.features[name].isna().mean()),
            cardinality=int(loaded.features[name].nunique(dropna=True)),
            summary=_summary(loaded.features[name], kind),
        )
        for name, kind in loaded.feature_types.items()
    ]
    return DatasetProfile(
        source=loaded.spec.path,
        rows=len(loaded.target),
        quarantined={str(k): int(v) for k, v in reasons.items()},
        target_column=loaded.spec.target.column,
        target_rate=float(loaded.target.mean()),
        target_type=loaded.spec.target.type,
        treated_share=None if loaded.treatment is None else float(loaded.treatment.mean()),
        columns=columns,
    )


def format_profile(profile: DatasetProfile) -> str:
    """The profile as an aligned text table."""
    quarantined = ", ".join(f"{reason}={n}" for reason, n in profile.quarantined.items()) or "none"
    lines = [
        f"source:       {profile.source}",
        f"rows:         {profile.rows:,} (quarantined: {quarantined})",
        f"target:       {profile.target_column}, "
        + (
            f"bad rate {profile.target_rate:.2%}"
            if profile.target_type == "binary"
            else f"continuous, mean {profile.target_rate:.4g}"
        ),
    ]
    if profile.treated_share is not None:
        lines.append(f"treated:      {profile.treated_share:.2%}")
    width = max([len(c.name) for c in profile.columns] + [6])
    lines.append("")
    lines.append(f"{'column':<{width}}  {'type':<11}  {'missing':>7}  {'distinct':>8}  summary")
    for c in profile.columns:
        lines.append(f"{c.name:<{width}}  {c.kind:<11}  {c.missing_share:>7.1%}  {c.cardinality:>8,}  {c.summary}")
    return "\n".join(lines)
