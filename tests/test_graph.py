"""The model graph's pure helpers: results of rows routed to different credit models merged back in order."""

from __future__ import annotations

import numpy as np

from tala_ray.policy.decision import PolicyParams
from tala_ray.serving.graph import Contributions, decline_reasons, merge_contributions, merge_rows


def test_rows_scored_by_two_models_come_back_in_row_order() -> None:
    parts = [([0, 3], ["a0", "a3"]), ([1, 2], ["b1", "b2"])]
    assert merge_rows(parts, 4) == ["a0", "b1", "b2", "a3"]


def test_contributions_of_two_models_are_merged_by_feature_name() -> None:
    """The challenger may use other features: each row keeps its own model's values, a feature
    its model does not use contributes nothing."""
    champion = Contributions(["bill_count_90d", "tenure_days"], np.array([[0.5, 0.1], [0.2, 0.3]]))
    challenger = Contributions(["tenure_days", "betting_installs"], np.array([[0.4, 0.9]]))
    merged = merge_contributions([([0, 2], champion), ([1], challenger)], 3)
    assert merged.features == ["bill_count_90d", "tenure_days", "betting_installs"]
    np.testing.assert_array_equal(merged.values, [[0.5, 0.1, 0.0], [0.0, 0.4, 0.9], [0.2, 0.3, 0.0]])
    reasons = decline_reasons(PolicyParams(), {}, merged)
    assert [r["code"] for r in reasons[1]] == ["R07", "R12"]
    assert [r["code"] for r in reasons[0]] == ["R06", "R12"]
