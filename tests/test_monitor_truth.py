"""The monitor judged against the synthetic world's truth: it alerts within a week of each planted change,
on what changed; it stays quiet without a change; its intervals cover the true values."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from test_monitor_support import AS_OF, rehearse

from tala_ray.data.scenarios import scenario_record
from tala_ray.monitoring.config import MonitorConfig
from tala_ray.monitoring.drift import ALL, drift_summary
from tala_ray.monitoring.estimated import calibrator, expected_auc
from tala_ray.monitoring.live_uplift import bucket_of, policy_gain, rate, true_profit_effect
from tala_ray.monitoring.monitor import run_monitor
from tala_ray.monitoring.outcomes import labelled
from tala_ray.monitoring.reference import read_reference

CHANGES = ("income_shock", "new_channel", "betting_wave")
CONFIG = MonitorConfig()


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    """(rehearsal, monitor result) of a scenario and seed, computed once per module."""
    cache = {}

    def get(scenario: str, seed: int = 1):
        if (scenario, seed) not in cache:
            rehearsal = rehearse(tmp_path_factory.mktemp(f"{scenario}-{seed}"), scenario, seed)
            result = run_monitor(rehearsal.log, rehearsal.reference, rehearsal.outcomes, AS_OF, CONFIG)
            cache[scenario, seed] = rehearsal, result
        return cache[scenario, seed]

    return get


def _alerts(result) -> list[str]:
    return [check.line() for check in result.checks if check.status == "ALERT"]


def _changed(column: str, prefixes: list[str]) -> bool:
    return any(column.startswith(prefix) for prefix in prefixes)


@pytest.mark.parametrize("scenario", CHANGES)
def test_each_change_raises_a_drift_alert_within_a_week_on_what_changed(monitored, scenario):
    rehearsal, result = monitored(scenario)
    record = scenario_record(rehearsal.live)
    drift = [check for check in result.checks if "drift" in check.name and check.status == "ALERT"]
    assert drift, f"{scenario}: no drift alert"
    first = min(check.since for check in drift)
    onset = record.onset.date()
    print(f"\n{scenario}: onset {onset}, first drift alert {first} (+{(first - onset).days} days)")
    assert onset <= first <= onset + timedelta(days=7)
    summary = drift_summary(result.drift)
    strays = summary[~summary["column"].map(lambda c: _changed(c, record.changed_features))]
    assert strays.empty, f"drift on columns the scenario did not change: {strays.to_dict('records')}"
    segments = set(summary["segment"])
    assert segments <= {ALL, *record.countries}
    if scenario == "income_shock":
        assert record.countries[0] in segments, "the shocked country is named"


def test_no_change_raises_no_alert(monitored):
    _, result = monitored("none", 1)
    assert not _alerts(result)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4, 5])
def test_no_change_raises_no_alert_on_other_seeds(monitored, seed):
    _, result = monitored("none", seed)
    assert not _alerts(result)


def _truth_of_labelled(result, rehearsal) -> pd.DataFrame:
    loans = labelled(result.joined).merge(rehearsal.truth, on="application_id", validate="one_to_one")
    loans["true_pd"] = np.where(loans["treated"], loans["pd_treated"], loans["pd_control"])
    return loans


def test_realized_default_rate_intervals_cover_the_true_mean_pd(monitored):
    covered, total = 0, 0
    for scenario in ("none", *CHANGES):
        rehearsal, result = monitored(scenario)
        truth = _truth_of_labelled(result, rehearsal).groupby("vintage")["true_pd"].mean()
        vintages = result.realized[(result.realized["segment"] == ALL) & result.realized["judged"]]
        inside = (vintages["ci_low"] <= vintages["vintage"].map(truth)) & (
            vintages["vintage"].map(truth) <= vintages["ci_high"]
        )
        covered, total = covered + int(inside.sum()), total + len(vintages)
    print(f"\nrealized default rate: {covered} of {total} vintage intervals (95%) cover the true mean PD")
    assert total >= 20 and covered / total >= 0.85


def test_live_uplift_intervals_cover_the_bucket_truth(monitored):
    rate_covered, gain_covered, lines = 0, 0, []
    for scenario in ("none", *CHANGES):
        rehearsal, result = monitored(scenario)
        bucket = bucket_of(result.joined).merge(rehearsal.truth, on="application_id", validate="one_to_one")
        true_rate = rate(bucket["uplift"].to_numpy(), bucket["true_uplift"].to_numpy(), CONFIG.uplift.weighting)
        effect = true_profit_effect(
            bucket, bucket["pd_control"].to_numpy(), bucket["pd_treated"].to_numpy(), CONFIG.economics
        )
        true_gain = policy_gain(bucket, effect)
        uplift = result.uplift
        rate_covered += uplift.rate_low <= true_rate <= uplift.rate_high
        gain_covered += uplift.gain_low <= true_gain <= uplift.gain_high
        lines.append(
            f"{scenario}: RATE {uplift.rate:.4f} [{uplift.rate_low:.4f}, {uplift.rate_high:.4f}] "
            f"truth {true_rate:.4f}; gain {uplift.policy_gain_usd:+.3f} [{uplift.gain_low:+.3f}, "
            f"{uplift.gain_high:+.3f}] truth {true_gain:+.3f}"
        )
    print("\n" + "\n".join(lines))
    assert rate_covered >= 3 and gain_covered >= 3  # four 95% intervals each


@pytest.mark.parametrize("scenario", ("none", "income_shock", "new_channel", "betting_wave"))
def test_estimated_auc_before_labels_matches_the_realized_one_without_concept_drift(monitored, scenario):
    rehearsal, result = monitored(scenario)
    loans = labelled(result.joined)
    calibrate = calibrator(read_reference(rehearsal.reference), CONFIG.estimated.calibrate)
    estimated = expected_auc(loans["pd_served"], calibrate(loans["pd_served"].to_numpy()))
    realized = roc_auc_score(loans["defaulted"].astype(int), loans["pd_served"])
    expected_rate = float(calibrate(loans["pd_served"].to_numpy()).mean())
    print(
        f"\n{scenario}: AUC estimated before labels {estimated:.4f}, realized {realized:.4f} "
        f"({estimated - realized:+.4f}); default rate expected {expected_rate:.4f}, "
        f"realized {loans['defaulted'].mean():.4f}"
    )
    if scenario_record(rehearsal.live).concept_drift:
        # the estimate keeps believing the old risk: the realized default rate shows the change once labels mature
        assert loans["defaulted"].mean() > expected_rate * 1.15
        assert any(c.name == "realized default rate" and c.status == "ALERT" for c in result.checks)
    else:
        assert abs(estimated - realized) <= 0.03
