"""A common training frame from a feature table or a dataset spec, and its splits."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from tala_ray.core.errors import UserError
from tala_ray.data.dataset_spec import TargetType, load_dataset, load_dataset_spec
from tala_ray.features.table import KEY_COLUMNS, OUTCOME_COLUMNS, read_feature_manifest, read_feature_table
from tala_ray.models.data_spec import DEFAULT_TARGET, Cohort, DataSource, SplitSpec, TargetColumn

# Columns of a feature table that are keys, design or outcome, never model inputs.
NON_FEATURE_COLUMNS = (*KEY_COLUMNS, *OUTCOME_COLUMNS)


@dataclass(frozen=True)
class Lineage:
    """Where the data came from, recorded with every model trained on it."""

    source: str
    feature_set_version: str | None = None
    data_content_hash: str | None = None
    world: str | None = None  # the generated world, for truth-based evaluation
    quarantined_rows: int = 0  # input rows the loader set aside (with a reason) instead of training on


@dataclass(frozen=True)
class TrainingFrame:
    """Model inputs plus target and, where known, time, treatment (arm codes: 0 = none) and propensity.

    A binary target is 1 = default; a continuous one (`target_type`) is a number in its units."""

    features: pd.DataFrame
    target: np.ndarray
    ids: np.ndarray
    times: np.ndarray | None = None
    treatment: np.ndarray | None = None
    propensity: np.ndarray | None = None
    lineage: Lineage = field(default_factory=lambda: Lineage(source="in-memory"))
    target_type: TargetType = "binary"
    target_name: str = DEFAULT_TARGET.column

    def __post_init__(self) -> None:
        if self.features.shape[1] == 0:
            raise UserError("data: no feature columns")
        if self.target_type == "continuous":
            if not np.isfinite(np.asarray(self.target, dtype=np.float64)).all():
                raise UserError(f"data: the continuous target {self.target_name!r} must be finite numbers")
            return
        labels = set(np.unique(self.target).tolist())
        if not labels <= {0, 1}:
            raise UserError(f"data: the target must be binary 0/1 (1 = default), found values {sorted(labels)[:5]}")

    @property
    def is_binary(self) -> bool:
        return self.target_type == "binary"

    @property
    def feature_names(self) -> list[str]:
        return list(self.features.columns)

    def take(self, positions: np.ndarray) -> TrainingFrame:
        """The rows at `positions` (integer positions, in the given order)."""

        def pick(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[positions]

        return replace(
            self,
            features=self.features.iloc[positions].reset_index(drop=True),
            target=self.target[positions],
            ids=self.ids[positions],
            times=pick(self.times),
            treatment=pick(self.treatment),
            propensity=pick(self.propensity),
        )


@dataclass(frozen=True)
class PreparedData:
    """The rows an experiment splits and tunes on; a family's subclass adds what its evaluation needs."""

    frame: TrainingFrame


@dataclass(frozen=True)
class Splits:
    train: TrainingFrame
    valid: TrainingFrame
    test: TrainingFrame


def frame_from_feature_table(
    table: pd.DataFrame, lineage: Lineage, feature_names: list[str] | None = None, target: TargetColumn = DEFAULT_TARGET
) -> TrainingFrame:
    """A training frame from a feature table's columns: `feature_names`, or all but the key and outcome
    columns; the target is `target`'s column (default: `defaulted`, binary)."""
    names = feature_names or [c for c in table.columns if c not in NON_FEATURE_COLUMNS]
    if target.column not in table.columns:
        outcomes = [c for c in ("defaulted", *OUTCOME_COLUMNS) if c in table.columns]
        raise UserError(
            f"data.target.column: {target.column!r} is not a column of feature table {lineage.source!r} "
            f"(outcomes: {outcomes})"
        )
    missing = [c for c in ("application_id", "application_time", *names) if c not in table.columns]
    if missing:
        raise UserError(f"feature table {lineage.source!r}: missing columns {missing}")
    features = table[names]
    values = table[target.column]
    return TrainingFrame(
        features=features.reset_index(drop=True),
        target=values.to_numpy(dtype=np.int64 if target.type == "binary" else np.float64),
        ids=table["application_id"].to_numpy(),
        times=table["application_time"].to_numpy(),
        treatment=table["treatment"].to_numpy(dtype=np.int64) if "treatment" in table else None,
        propensity=table["propensity"].to_numpy(dtype=np.float64) if "propensity" in table else None,
        lineage=lineage,
        target_type=target.type,
        target_name=target.column,
    )


def load_training_frame(source: DataSource, cohort: Cohort = "all") -> TrainingFrame:
    """Read the experiment's data: a feature table (one cohort of it, or all) or a dataset spec."""
    if source.source != "feature_table":
        return _frame_from_dataset_spec(source.path)
    manifest = read_feature_manifest(source.path)
    if source.world:
        check_same_world(source.world, manifest.world_content_hash)
    lineage = Lineage(
        source=source.path,
        feature_set_version=manifest.feature_set_version,
        data_content_hash=manifest.world_content_hash,
        world=source.world,
        quarantined_rows=manifest.quarantined_total,
    )
    table = read_feature_table(source.path)
    if cohort != "all":
        table = table[table["cohort"] == cohort].reset_index(drop=True)
    return frame_from_feature_table(table, lineage, manifest.feature_names, source.target_column)


def check_same_world(world: str, expected_hash: str | None) -> None:
    """The world given for evaluation must be the one the features were built from."""
    from tala_ray.data.generate import read_manifest  # data.generate imports ray

    actual = read_manifest(world).content_hash
    if expected_hash is not None and actual != expected_hash:
        raise UserError(
            f"data.world: {world!r} (content hash {actual[:12]}) is not the world the feature table was built from "
            f"({expected_hash[:12]})"
        )


def _frame_from_dataset_spec(path: str) -> TrainingFrame:
    loaded = load_dataset(load_dataset_spec(path))
    target = loaded.spec.target
    return TrainingFrame(
        features=loaded.features.reset_index(drop=True),
        target=np.asarray(loaded.target, dtype=np.int64 if target.type == "binary" else np.float64),
        ids=np.asarray(loaded.ids),
        treatment=None if loaded.treatment is None else np.asarray(loaded.treatment, dtype=np.int64),
        lineage=Lineage(source=path, data_content_hash=loaded.content_hash, quarantined_rows=len(loaded.quarantined)),
        target_type=target.type,
        target_name=target.column,
    )


def split_frame(frame: TrainingFrame, spec: SplitSpec, seed: int) -> Splits:
    """Out-of-time (earliest train, then valid, latest test) or random stratified."""
    n = len(frame.target)
    n_test, n_valid = int(round(n * spec.test_fraction)), int(round(n * spec.valid_fraction))
    if spec.kind == "out_of_time":
        if frame.times is None:
            raise UserError("split: out_of_time needs application times; use kind: random_stratified for this data")
        order = np.argsort(frame.times, kind="stable")
        train, valid, test = (
            order[: n - n_valid - n_test],
            order[n - n_valid - n_test : n - n_test],
            order[n - n_test :],
        )
    else:
        positions, strata = np.arange(n), _strata(frame)
        rest, test = train_test_split(positions, test_size=n_test, stratify=strata, random_state=seed)
        train, valid = train_test_split(rest, test_size=n_valid, stratify=strata[rest], random_state=seed)
    splits = Splits(train=frame.take(train), valid=frame.take(valid), test=frame.take(test))
    for name in ("train", "valid", "test"):
        if frame.is_binary and np.unique(getattr(splits, name).target).size != 2:
            raise UserError(f"split: the {name} part has only one class; use more data or larger fractions")
    return splits


def _strata(frame: TrainingFrame) -> np.ndarray:
    """What a random split keeps equal across parts: the binary target, or a continuous one's quintile."""
    if frame.is_binary:
        return frame.target
    ranks = pd.Series(frame.target).rank(method="first").to_numpy()
    return np.minimum((5 * (ranks - 1) / len(ranks)).astype(np.int64), 4)


def combine(first: TrainingFrame, second: TrainingFrame) -> TrainingFrame:
    """Rows of both frames (for refitting the winner on train + valid)."""

    def join(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
        return None if a is None or b is None else np.concatenate([a, b])

    return replace(
        first,
        features=pd.concat([first.features, second.features], ignore_index=True),
        target=np.concatenate([first.target, second.target]),
        ids=np.concatenate([first.ids, second.ids]),
        times=join(first.times, second.times),
        treatment=join(first.treatment, second.treatment),
        propensity=join(first.propensity, second.propensity),
    )
