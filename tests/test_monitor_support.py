"""A feedback loop rehearsed on the synthetic world, for the monitor's tests (no test of its own here).

A training period is simulated; quick models learn the true PD and uplift from its features (half the
applications) and score the other half: the training reference. A live period with a scenario is
then decided by the serving policy on those models' scores, with an exploration share, logged through
the prediction log's writer; outcomes are released for what was served (late and duplicated
deliveries included). Nothing here reads the live truth except the outcome release, as in life.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from tala_ray.data import schema
from tala_ray.data.outcomes import Delivery, release_outcomes, write_release
from tala_ray.data.scenarios import LiveSpec, simulate_live_chunk
from tala_ray.data.world import simulate_chunk
from tala_ray.features.definitions import FEATURE_NAMES, compute_features
from tala_ray.monitoring.reference import write_reference
from tala_ray.monitoring.simulated_log import simulated_columns, write_simulated_log
from tala_ray.policy.decision import PolicyParams

TRAINING_APPLICANTS = 12_000
LIVE_APPLICANTS = 24_000
LIVE_DAYS = 42
ONSET_DAY = 21
EXPLORATION_SHARE = 0.25
AS_OF = "2026-12-01"  # every live loan's outcome is known by then
CODES = {value: float(i) for i, value in enumerate((*schema.COUNTRIES, *schema.DEVICE_OS))}


@dataclass(frozen=True)
class Rehearsal:
    """Where a rehearsal wrote its log, reference and outcomes, and the live period's truth."""

    log: str
    reference: str
    outcomes: str
    live: LiveSpec
    truth: pd.DataFrame  # the live applications' truth (pd_control, pd_treated, true_uplift)


def _features(tables: dict) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    frames = {name: table.to_pandas() for name, table in tables.items()}
    return frames, compute_features(frames["applications"], frames["applicants"], frames["events"], frames["loans"])


def _matrix(features: pd.DataFrame) -> pd.DataFrame:
    x = features[FEATURE_NAMES].copy()
    for column in ("country", "device_os"):
        x[column] = x[column].map(CODES).astype(float)
    return x


def rehearse(
    root: Path, scenario: str, seed: int, live_applicants: int = LIVE_APPLICANTS, onset_day: int = ONSET_DAY
) -> Rehearsal:
    """Train, serve the live period of `scenario` and release its outcomes under `root`."""
    train, train_features = _features(simulate_chunk(seed, 0, 0, TRAINING_APPLICANTS))
    fit = np.arange(TRAINING_APPLICANTS) % 2 == 0
    truth = train["truth"][fit]
    with threadpool_limits(1):  # OpenMP threads thrash on a busy 2-core machine
        credit = HistGradientBoostingRegressor(max_iter=100, random_state=0).fit(
            _matrix(train_features[fit]), truth["pd_control"]
        )
        uplift = HistGradientBoostingRegressor(max_iter=100, random_state=0).fit(
            _matrix(train_features[fit]), truth["true_uplift"]
        )

    def score(features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        with threadpool_limits(1):
            x = _matrix(features)
            return np.clip(credit.predict(x), 1e-4, 1 - 1e-4), uplift.predict(x)

    reference = train_features[~fit].reset_index(drop=True)
    reference["default_probability"], reference["uplift"] = score(reference)
    reference["defaulted"] = train["applications"]["defaulted"].to_numpy()[~fit]
    reference["treatment"] = train["applications"]["treatment"].to_numpy()[~fit]
    write_reference(reference, str(root / "reference.parquet"))

    live = LiveSpec(applicants=live_applicants, days=LIVE_DAYS, scenario=scenario, onset_day=onset_day)
    tables, live_features = _features(simulate_live_chunk(seed, 0, TRAINING_APPLICANTS, live_applicants, live))
    pd_control, effect = score(live_features)
    columns = simulated_columns(
        live_features, tables["applications"], pd_control, effect, PolicyParams(), EXPLORATION_SHARE, seed
    )
    write_simulated_log(str(root / "log"), columns, live_features)
    served = pd.DataFrame(
        {
            "application_id": columns["application_id"],
            "lent": np.array(columns["decision"]) == "approve",
            "treated": np.array([given is not None for given in columns["intervention"]]),
        }
    )
    released = release_outcomes(tables["potential_outcomes"], served, Delivery(seed=seed))
    write_release(released, str(root / "outcomes"))
    return Rehearsal(str(root / "log"), str(root / "reference.parquet"), str(root / "outcomes"), live, tables["truth"])
