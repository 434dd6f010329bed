"""The prediction log read as decisions: one row per application, with the features as served.

The monitor needs, per logged decision: `application_id` (the join key of the outcomes),
`decision`, `limit`, `intervention`, `default_probability`, `uplift` and the `features` struct.
`application_time` (the clock of the application; without it `logged_at`), the model versions and
the exploration fields (`explored`, `propensity`: the probability the intervention was given,
`policy_intervention`: what the policy chose before exploration) are used when present. An
application decided twice (a retry) counts once, its first decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tala_ray.core.errors import UserError
from tala_ray.data.schema import FX_PER_USD
from tala_ray.features.definitions import FEATURE_NAMES
from tala_ray.monitoring.prediction_log import FEATURES_COLUMN, TIME_COLUMN
from tala_ray.policy.decision import NO_INTERVENTION

REQUIRED = ("application_id", "decision", "limit", "intervention", "default_probability", "uplift", FEATURES_COLUMN)
SCORES = ("default_probability", "uplift")


@dataclass(frozen=True)
class Decisions:
    """One row per decided application (`frame`) and its served features (`features`, same order)."""

    frame: pd.DataFrame
    features: pd.DataFrame
    duplicates: int  # decisions dropped because their application was decided before

    @property
    def model_versions(self) -> dict[str, list[str]]:
        """The credit and uplift model versions that decided, most used first."""
        out = {}
        for kind in ("credit", "uplift"):
            column = f"{kind}_model_version"
            values = self.frame[column].dropna().astype(str) if column in self.frame else pd.Series([], dtype=str)
            out[kind] = list(values.value_counts().index)
        return out


def _treated(intervention: pd.Series) -> np.ndarray:
    return (intervention.notna() & (intervention.astype(str) != NO_INTERVENTION)).to_numpy()


def _features(column: pd.Series) -> pd.DataFrame:
    rows = [value if isinstance(value, dict) else {} for value in column]
    features = pd.DataFrame(rows, index=column.index)
    missing = [name for name in FEATURE_NAMES if name not in features.columns]
    if missing:
        raise UserError(f"prediction log: the served features lack {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return features[FEATURE_NAMES].reset_index(drop=True)


def decisions_from_log(log: pd.DataFrame) -> Decisions:
    """The decisions of a prediction log (as `read_prediction_log` returns it)."""
    if log.empty:
        raise UserError("prediction log: no logged decisions")
    missing = [name for name in REQUIRED if name not in log.columns]
    if missing:
        raise UserError(f"prediction log: missing column(s) {missing} (the monitor joins outcomes by application_id)")
    if log["application_id"].isna().any():
        raise UserError("prediction log: application_id is missing on some decisions")
    time_column = "application_time" if "application_time" in log.columns else TIME_COLUMN
    log = log.assign(_at=pd.to_datetime(log[time_column], utc=True), _logged=pd.to_datetime(log[TIME_COLUMN], utc=True))
    log = log.sort_values(["_at", "_logged"], kind="stable")
    repeated = log["application_id"].duplicated()
    log = log[~repeated].reset_index(drop=True)
    at = log["_at"]
    features = _features(log[FEATURES_COLUMN])
    frame = pd.DataFrame(
        {
            "application_id": log["application_id"].astype(np.int64),
            "time": at,
            "day": at.dt.floor("D"),
            "vintage": (at.dt.floor("D") - pd.to_timedelta(at.dt.day_of_week, unit="D")),
            "country": features["country"].astype(str),
            "term_days": features["term_days"].astype(float),
        }
    )
    frame["fx"] = frame["country"].map(FX_PER_USD).astype(float)
    frame["lent"] = (log["decision"].astype(str) == "approve").to_numpy() & (log["limit"].astype(float) > 0).to_numpy()
    frame["limit"] = log["limit"].astype(float).where(frame["lent"], 0.0)
    frame["treated"] = _treated(log["intervention"]) & frame["lent"]
    for score in SCORES:
        frame[score] = log[score].astype(float)
    frame["pd_served"] = np.clip(frame["default_probability"] - frame["uplift"] * frame["treated"], 0.0, 1.0)
    frame["explored"] = log["explored"].astype("boolean").fillna(False).astype(bool) if "explored" in log else False
    frame["propensity"] = log["propensity"].astype(float) if "propensity" in log else np.nan
    policy = log["policy_intervention"] if "policy_intervention" in log else log["intervention"]
    frame["policy_treated"] = _treated(policy) & frame["lent"]
    for column in ("credit_model_version", "uplift_model_version"):
        frame[column] = log[column].astype(str) if column in log else None
    return Decisions(frame=frame, features=features, duplicates=int(repeated.sum()))
