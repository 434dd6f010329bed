"""`monitoring.consistency` on logs whose served features are the offline ones, then altered: each
kind of difference is counted where it is (mismatch, missing, extra, SMAPE), and a log without
decisions by id is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tala_ray.core.errors import UserError
from tala_ray.data import validation
from tala_ray.data.world import simulate_chunk
from tala_ray.features.definitions import FEATURE_NAMES, compute_features
from tala_ray.monitoring.consistency import consistency


@pytest.fixture(scope="module")
def raw() -> dict[str, pd.DataFrame]:
    chunk = simulate_chunk(3, 0, 0, 300)
    return {t: validation.conform(t, chunk[t]).to_pandas() for t in ("applicants", "applications", "events", "loans")}


def _log(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """A prediction log of 40 decisions by id whose served features are exactly the offline ones."""
    apps = raw["applications"].iloc[:40].reset_index(drop=True)
    offline = compute_features(apps, raw["applicants"], raw["events"], raw["loans"]).set_index("application_id")
    features = offline.loc[apps["application_id"]].reset_index(drop=True)
    rows = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in features.to_dict("records")
    ]
    return pd.DataFrame(
        {
            "role": "decision",
            "applicant_id": apps["applicant_id"].astype(float),
            "application_time": apps["application_time"],
            "requested_amount": apps["amount"],
            "requested_term_days": apps["term_days"].astype(float),
            "features": rows,
        }
    )


def test_served_features_equal_to_the_offline_ones_have_no_mismatch(raw):
    report = consistency(_log(raw), raw)
    assert report.decisions == 40 and report.mismatch_rate == 0.0
    assert [f.feature for f in report.features] == FEATURE_NAMES


def test_each_difference_is_counted_as_what_it_is(raw):
    log = _log(raw)
    numeric = next(n for n in FEATURE_NAMES if all(isinstance(r[n], float) and r[n] > 0 for r in log["features"][:3]))
    nullable = next(n for n in FEATURE_NAMES if any(r[n] is None for r in log["features"]))
    empty = next(i for i, r in enumerate(log["features"]) if r[nullable] is None)
    log.at[0, "features"] = log["features"][0] | {numeric: None}  # served nothing: missing
    log.at[1, "features"] = log["features"][1] | {numeric: log["features"][1][numeric] * 3}  # SMAPE 2*2/4 = 1
    log.at[empty, "features"] = log["features"][empty] | {nullable: 1.0}  # served a value offline lacks: extra
    log.loc[40] = {**log.loc[2].to_dict(), "role": "shadow"}  # shadow rows are not judged
    report = {f.feature: f for f in consistency(log, raw).features}
    assert report[numeric].missing == 1 and report[numeric].mismatch_rate == pytest.approx(2 / 40)
    assert report[numeric].smape == pytest.approx(1.0 / 39)
    assert report[nullable].extra == 1 and report[nullable].mismatch_rate == pytest.approx(1 / 40)
    assert all(f.mismatch_rate == 0 for name, f in report.items() if name not in (numeric, nullable))


def test_a_log_without_decisions_by_id_is_refused(raw):
    log = _log(raw).assign(applicant_id=np.nan)
    with pytest.raises(UserError, match="no decision by applicant id"):
        consistency(log, raw)
