"""A prediction log simulated from a world's applications: what the decision service would log.

For tests, benchmarks and demos without the service: the features from the one feature code, the
scores of given models, the decisions of the serving policy (`decision_dicts`), and an exploration
share: among the approved applications that share gets the intervention at random (probability
`EXPLORE_PROPENSITY`, logged as `propensity`; `policy_intervention` keeps what the policy chose).
Rows are written through `PredictionLogWriter` with the fields the monitor reads (see
`tala_ray.monitoring.decisions`); the decision time is the application's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tala_ray.data.schema import INTERVENTION
from tala_ray.features.definitions import FEATURE_NAMES
from tala_ray.monitoring.prediction_log import PredictionLogWriter
from tala_ray.policy.decision import PolicyParams, decision_dicts

EXPLORE_PROPENSITY = 0.5


def simulated_columns(
    features: pd.DataFrame,
    applications: pd.DataFrame,
    pd_control: np.ndarray,
    uplift: np.ndarray,
    params: PolicyParams,
    exploration_share: float,
    seed: int,
) -> dict[str, list]:
    """The logged columns of the decisions on `applications` (rows aligned with `features`)."""
    decided = decision_dicts(pd_control, uplift, applications["amount"], features["term_days"], params)
    approved = np.array([d["decision"] == "approve" for d in decided])
    policy = np.array([d["intervention"] is not None for d in decided])
    rng = np.random.default_rng(seed)
    explored = approved & (rng.random(len(decided)) < exploration_share)
    coin = rng.random(len(decided)) < EXPLORE_PROPENSITY
    treated = np.where(explored, coin, policy)
    propensity = np.where(explored, EXPLORE_PROPENSITY, treated.astype(float))
    ids = applications["application_id"].to_numpy(np.int64)
    return {
        "request_id": [f"sim-{i}" for i in ids],
        "logged_at": list(applications["application_time"]),
        "application_id": ids.tolist(),
        "application_time": list(applications["application_time"]),
        "decision": [d["decision"] for d in decided],
        "limit": [d["limit"] for d in decided],
        "intervention": [INTERVENTION if t else None for t in treated],
        "policy_intervention": [d["intervention"] for d in decided],
        "explored": explored.tolist(),
        "propensity": propensity.tolist(),
        "default_probability": np.asarray(pd_control, float).tolist(),
        "uplift": np.asarray(uplift, float).tolist(),
        "expected_profit": [d["expected_profit"] for d in decided],
        "credit_model_version": ["sim-credit"] * len(ids),
        "credit_role": ["champion"] * len(ids),
        "uplift_model_version": ["sim-uplift"] * len(ids),
    }


def write_simulated_log(uri: str, columns: dict[str, list], features: pd.DataFrame, rows_per_file: int = 5_000) -> None:
    """Write simulated decisions (and their features) to a prediction log at `uri`."""
    writer = PredictionLogWriter(uri, flush_interval_s=3600, max_buffer_rows=rows_per_file)
    size = len(features)
    try:
        for start in range(0, size, rows_per_file):
            stop = min(start + rows_per_file, size)
            part = {name: values[start:stop] for name, values in columns.items()}
            served = {name: features[name].to_numpy()[start:stop] for name in FEATURE_NAMES}
            writer.append_columns(part, stop - start, features=served)
            writer.flush()
    finally:
        writer.close()
