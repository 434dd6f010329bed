"""The monitor's parts: drift thresholds calibrated for the sample size, estimation before labels,
realized intervals, live uplift on simulated logs, the outcome feed and the log contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import roc_auc_score

from tala_ray.core.errors import UserError
from tala_ray.data.outcomes import write_release
from tala_ray.data.world import simulate_chunk
from tala_ray.features.definitions import FEATURE_NAMES, compute_features
from tala_ray.models.predictors import CreditPredictor, UpliftPredictor
from tala_ray.monitoring.config import DriftRule, MonitorConfig, UpliftRule, load_monitor_config
from tala_ray.monitoring.decisions import decisions_from_log
from tala_ray.monitoring.drift import Bins, drift_by_day, fit_bins, homogeneity_p_value, psi
from tala_ray.monitoring.estimated import expected_auc, expected_rate
from tala_ray.monitoring.live_uplift import live_uplift, rate
from tala_ray.monitoring.outcomes import join_outcomes, read_outcomes
from tala_ray.monitoring.prediction_log import PredictionLogWriter, read_prediction_log
from tala_ray.monitoring.realized import rate_p_value, wilson_interval
from tala_ray.monitoring.reference import read_reference, reference_from_frame, score_reference, write_reference

ROOT = Path(__file__).resolve().parents[1]


def test_a_fixed_psi_bar_fires_on_unchanged_data_where_the_calibrated_test_does_not():
    rng = np.random.default_rng(0)
    reference = rng.lognormal(0, 1, 5_000)
    bins = fit_bins(pd.Series(reference), 10, categorical=False)
    ref_counts = np.bincount(bins.codes(pd.Series(reference)), minlength=bins.size).astype(float)
    live = rng.lognormal(0, 1, (2_000, 100))  # 2,000 unchanged days of 100 decisions
    counts = np.stack([np.bincount(bins.codes(pd.Series(day)), minlength=bins.size) for day in live]).astype(float)
    fixed = (psi(ref_counts[None], counts) > 0.1).mean()
    calibrated = (homogeneity_p_value(ref_counts[None], counts) < 0.01).mean()
    assert fixed > 0.2, "a fixed PSI of 0.1 fires often at a hundred rows"
    assert calibrated < 0.02, "the chi-square null keeps the false alarm rate at its level"
    shifted = np.bincount(bins.codes(pd.Series(rng.lognormal(0.6, 1, 100))), minlength=bins.size).astype(float)
    assert homogeneity_p_value(ref_counts[None], shifted[None])[0] < 1e-4, "a real shift is seen at the same size"


def test_bins_keep_missing_and_unseen_values_apart():
    numeric = fit_bins(pd.Series([1.0, 2.0, 2.0, 3.0, np.nan]), 4, categorical=False)
    codes = numeric.codes(pd.Series([0.5, 2.0, 99.0, np.nan]))
    assert codes[-1] == numeric.size - 1 and codes[0] == 0 and codes[2] == numeric.size - 2
    text = Bins(categories=("KE", "PH"))
    assert text.codes(pd.Series(["PH", "XX", None])).tolist() == [1, 2, 3]


@pytest.fixture(scope="module")
def world_reference() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of 6,000 training applications with a made-up score: a reference and an unchanged live set."""
    tables = {name: table.to_pandas() for name, table in simulate_chunk(21, 0, 0, 6_000).items()}
    features = compute_features(tables["applications"], tables["applicants"], tables["events"], tables["loans"])
    features["default_probability"] = 1 / (1 + np.exp(-(features["spend_ratio_log_90d"].fillna(0) * 2 - 2)))
    features["uplift"] = 0.02 * (features["bill_count_90d"] <= 1)
    features["day"] = pd.Timestamp("2026-07-01", tz="UTC") + pd.to_timedelta(np.arange(6_000) % 20, unit="D")
    return features.iloc[:3_000].reset_index(drop=True), features.iloc[3_000:].reset_index(drop=True)


def test_drift_by_day_is_quiet_on_unchanged_data_and_names_a_planted_shift(world_reference):
    reference_frame, live = world_reference
    reference = reference_from_frame(reference_frame)
    rule = DriftRule(window_days=3, min_rows=100)
    quiet = drift_by_day(reference, live, live["day"], rule)
    assert quiet.tests > 1_000 and not quiet.cells["drifted"].any()
    shifted = live.copy()
    late = shifted["day"] >= pd.Timestamp("2026-07-12", tz="UTC")
    kenya = shifted["country"] == "KE"
    shifted.loc[late & kenya, "airtime_sum_30d_usd"] *= 2.5
    found = drift_by_day(reference, shifted, shifted["day"], rule).drifted()
    assert set(found["column"]) == {"airtime_sum_30d_usd"}
    assert set(found["segment"]) <= {"KE", "all"} and "KE" in set(found["segment"])
    assert found["day"].min() >= pd.Timestamp("2026-07-12", tz="UTC")


class _RiskOfSpending:
    """A tiny estimator: PD from the spend ratio, a fixed uplift (the reference's scores are its outputs)."""

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-features["spend_ratio_log_90d"].fillna(0).to_numpy()))
        return np.column_stack([1 - p, p])

    def effect(self, features: pd.DataFrame) -> np.ndarray:
        return np.full(len(features), 0.02)


def test_a_reference_is_a_scored_sample_of_the_training_features(world_reference, tmp_path):
    table, _ = world_reference
    table = table.drop(columns=["default_probability", "uplift", "day"]).assign(defaulted=0, treatment=1)
    credit = CreditPredictor("credit", "3", None, FEATURE_NAMES, _RiskOfSpending())
    uplift = UpliftPredictor("uplift", "2", None, FEATURE_NAMES, _RiskOfSpending())
    frame = score_reference(table, credit, uplift, rows=1_000, seed=1)
    assert len(frame) == 1_000 and frame["uplift"].eq(0.02).all()
    write_reference(frame, str(tmp_path / "ref" / "reference.parquet"))
    reference = read_reference(str(tmp_path / "ref" / "reference.parquet"))
    assert len(reference) == 1_000 and reference.treated.all()
    assert np.allclose(reference.pd_served, np.clip(frame["default_probability"] - 0.02, 0, 1))
    with pytest.raises(UserError, match="missing column"):
        write_reference(frame.drop(columns=["uplift"]), str(tmp_path / "bad.parquet"))
    with pytest.raises(UserError, match="nothing at"):
        read_reference(str(tmp_path / "none.parquet"))


def test_expected_auc_and_rate_are_what_calibrated_pds_promise():
    rng = np.random.default_rng(3)
    p = rng.beta(1.2, 12, 3_000)
    score = p + rng.normal(0, 0.02, len(p))  # the ranking is the model's, the probabilities calibrated
    realized = [roc_auc_score(rng.random(len(p)) < p, score) for _ in range(200)]
    assert abs(np.mean(realized) - expected_auc(score, p)) < 0.005
    mean, low, high = expected_rate(p, 0.95)
    rates = [(rng.random(len(p)) < p).mean() for _ in range(400)]
    assert abs(mean - p.mean()) < 1e-12
    assert 0.92 < np.mean([(low <= r <= high) for r in rates]) < 0.98


def test_realized_intervals_and_tests():
    low, high = wilson_interval(40, 800, 0.95)
    assert low < 0.05 < high and high - low < 0.035
    assert rate_p_value(40, 800, 0.05) > 0.5
    assert rate_p_value(70, 800, 0.05) < 1e-4 and rate_p_value(15, 800, 0.05) < 1e-3


def _simulated_bucket(score_of: str, n: int = 6_000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A randomized exploration bucket: true effects known, the score as good as `score_of` says."""
    rng = np.random.default_rng(seed)
    pd_control = rng.uniform(0.05, 0.3, n)
    tau = np.where(rng.random(n) < 0.3, 0.08, 0.0) + rng.normal(0, 0.005, n)  # some helped a lot, most not
    score = {"good": tau + rng.normal(0, 0.02, n), "random": rng.normal(0, 0.03, n), "inverted": -tau}[score_of]
    treated = rng.random(n) < 0.5
    defaulted = rng.random(n) < np.where(treated, pd_control - tau, pd_control)
    frame = pd.DataFrame(
        {
            "explored": True,
            "propensity": 0.5,
            "lent": True,
            "matured": True,
            "known": True,
            "treated": treated,
            "defaulted": defaulted.astype(float),
            "default_probability": pd_control,
            "uplift": score,
            "policy_treated": score > 0.04,
            "limit": 1_000.0,
            "term_days": 30.0,
            "fx": 1.0,
        }
    )
    return frame, tau


@pytest.mark.parametrize("score_of", ["good", "random", "inverted"])
def test_live_uplift_interval_covers_the_true_rate_of_the_bucket(score_of):
    bucket, tau = _simulated_bucket(score_of)
    rule = UpliftRule(bootstrap=200)
    found = live_uplift(bucket, rule, MonitorConfig().economics)
    truth = rate(bucket["uplift"].to_numpy(), tau, rule.weighting)
    assert found.rate_low <= truth <= found.rate_high
    if score_of == "good":
        assert found.rate_low > 0
    if score_of == "inverted":
        assert found.rate_high < 0, "a ranking worse than random is an alert"


def test_live_uplift_needs_enough_explored_loans():
    bucket, _ = _simulated_bucket("good", n=100)
    assert live_uplift(bucket, UpliftRule(), MonitorConfig().economics) is None


def _outcome(application_id: int, defaulted: int, known: str, delivered: str) -> dict:
    return {
        "application_id": application_id,
        "applicant_id": application_id - 1_000_000_000,
        "due_time": pd.Timestamp(known, tz="UTC") - pd.Timedelta(days=30 if defaulted else 0),
        "defaulted": defaulted,
        "days_late": 30 if defaulted else 0,
        "known_time": pd.Timestamp(known, tz="UTC"),
        "delivered_time": pd.Timestamp(delivered, tz="UTC"),
    }


def test_a_late_or_repeated_outcome_counts_once(tmp_path):
    records = pd.DataFrame(
        [
            _outcome(1_000_000_001, 0, "2026-08-01", "2026-08-01"),
            _outcome(1_000_000_001, 0, "2026-08-01", "2026-08-03"),  # delivered again
            _outcome(1_000_000_002, 1, "2026-08-02", "2026-08-09"),  # late
            _outcome(1_000_000_003, 0, "2026-08-02", "2026-08-02"),
            _outcome(1_000_000_003, 1, "2026-08-02", "2026-08-05"),  # a repeat that disagrees: the first counts
            _outcome(1_000_000_004, 0, "2026-08-20", "2026-08-20"),  # after as_of
        ]
    ).astype({"defaulted": "int8", "days_late": "int32"})
    write_release(records, str(tmp_path / "outcomes"))
    feed = read_outcomes(str(tmp_path / "outcomes"), pd.Timestamp("2026-08-10", tz="UTC"))
    assert sorted(feed.frame["application_id"]) == [1_000_000_001, 1_000_000_002, 1_000_000_003]
    assert (feed.delivered, feed.duplicates, feed.conflicts, feed.late) == (5, 2, 1, 1)
    assert feed.frame.set_index("application_id").loc[1_000_000_003, "defaulted"] == 0
    again = read_outcomes(str(tmp_path / "outcomes"), pd.Timestamp("2026-08-10", tz="UTC"))
    assert again.frame.equals(feed.frame), "reading again changes nothing"
    assert read_outcomes(str(tmp_path / "outcomes"), pd.Timestamp("2026-07-01", tz="UTC")).frame.empty
    with pytest.raises(UserError, match="no outcome files"):
        read_outcomes(str(tmp_path / "nothing"), pd.Timestamp("2026-08-10", tz="UTC"))


def test_the_join_says_which_loans_have_final_known_outcomes():
    decisions = pd.DataFrame(
        {
            "application_id": [1, 2, 3, 4],
            "time": pd.to_datetime(["2026-07-01", "2026-07-01", "2026-07-25", "2026-07-01"], utc=True),
            "term_days": [14.0, 14.0, 14.0, 14.0],
            "lent": [True, True, True, False],
        }
    )
    known = pd.to_datetime(["2026-08-14", "2026-08-08"], utc=True)
    outcomes = pd.DataFrame(
        {"application_id": [1, 3], "defaulted": [1, 0], "days_late": [30, 0], "known_time": known}
        | {"delivered_time": known}
    )
    joined = join_outcomes(decisions, outcomes, pd.Timestamp("2026-08-20", tz="UTC")).set_index("application_id")
    assert joined["matured"].tolist() == [True, True, False, False]  # 3: due 08-08, final on 09-07
    assert joined["known"].tolist() == [True, False, True, False]
    assert joined.loc[1, "defaulted"] == 1 and np.isnan(joined.loc[4, "defaulted"])


def _log_rows(n: int, **extra: object) -> dict[str, list]:
    return {
        "application_id": list(range(1, n + 1)),
        "application_time": list(pd.date_range("2026-07-01", periods=n, freq="h", tz="UTC")),
        "decision": ["approve"] * n,
        "limit": [500.0] * n,
        "intervention": [None] * n,
        "default_probability": [0.1] * n,
        "uplift": [0.01] * n,
        **extra,
    }


def _features(n: int) -> dict[str, np.ndarray]:
    values = {name: np.full(n, 1.0) for name in FEATURE_NAMES}
    return values | {"country": np.array(["KE"] * n, dtype=object), "device_os": np.array(["ios"] * n, dtype=object)}


def test_the_log_contract_names_what_is_missing_and_counts_a_retry_once(tmp_path):
    writer = PredictionLogWriter(str(tmp_path / "log"), flush_interval_s=3600)
    columns = _log_rows(3)
    writer.append_columns(columns, 3, features=_features(3))
    retry = {name: values[:1] for name, values in _log_rows(3, decision=["decline"] * 3, limit=[0.0] * 3).items()}
    writer.append_columns(retry | {"application_time": [columns["application_time"][0]]}, 1, features=_features(1))
    writer.close()
    decisions = decisions_from_log(read_prediction_log(str(tmp_path / "log")))
    assert decisions.duplicates == 1 and len(decisions.frame) == 3
    assert decisions.frame["lent"].all(), "the first decision of an application counts"
    without_key = read_prediction_log(str(tmp_path / "log")).drop(columns=["application_id"])
    with pytest.raises(UserError, match="application_id"):
        decisions_from_log(without_key)


def test_the_shipped_monitor_file_is_the_defaults_and_bad_files_name_the_field(tmp_path):
    assert load_monitor_config(ROOT / "monitor.yaml") == MonitorConfig()
    bad = tmp_path / "monitor.yaml"
    bad.write_text("drift:\n  family_alpha: 2\n")
    with pytest.raises(UserError, match="drift.family_alpha"):
        load_monitor_config(bad)
    bad.write_text("drift:\n  window: 3\n")
    with pytest.raises(UserError, match="drift.window"):
        load_monitor_config(bad)


def test_metrics_are_prometheus_text(tmp_path):
    from tala_ray.monitoring.alerts import Check
    from tala_ray.monitoring.prometheus import metrics_text
    from tala_ray.monitoring.report import Headline, MonitorReport

    report = MonitorReport(
        as_of=pd.Timestamp("2026-09-01", tz="UTC").to_pydatetime(),
        first_day=pd.Timestamp("2026-07-01").date(),
        last_day=pd.Timestamp("2026-07-31").date(),
        decisions=10,
        duplicate_decisions=0,
        model_versions={"credit": ["3"], "uplift": ["2"]},
        outcomes={"counted": 4},
        reference_rows=100,
        reference_auc=0.8,
        headline=Headline(status="ALERT", text="x", models=[], since=None, cost=None),
        checks=[Check(name="feature drift", model="inputs", status="ALERT", summary="x")],
        drift={"drifted": [{"segment": "KE", "column": "inflow_sum_7d_usd", "max_psi": 0.3}], "drifted_pairs": 1},
        estimated=[{"vintage": "2026-06-29", "estimated_auc": 0.8, "expected_default_rate": 0.05}],
        realized=[],
        live_uplift=None,
    )
    families = {f.name: f for f in text_string_to_metric_families(metrics_text(report).decode())}
    assert families["tala_monitor_check_alert"].samples[0].value == 1.0
    assert families["tala_monitor_drift_max_psi"].samples[0].labels == {"segment": "KE", "column": "inflow_sum_7d_usd"}
    assert families["tala_monitor_alerts"].samples[0].value == 1.0
