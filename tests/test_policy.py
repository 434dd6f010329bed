"""Decision economics and reason codes (pure, no Ray)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tala_ray.data.schema import INTERVENTION
from tala_ray.policy.decision import (
    LimitRung,
    PolicyParams,
    decide,
    ladder_limits,
    reason_codes,
    reason_family,
)
from tala_ray.policy.economics import Economics, expected_profit, value_of_avoided_default

PARAMS = PolicyParams(
    fee_rate_per_30_days=0.12,
    loss_given_default=1.0,
    intervention_cost=5.0,
    limit_ladder=(LimitRung(max_pd=0.05, limit=1000.0), LimitRung(max_pd=0.2, limit=500.0)),
)


def one(pd_control: float, uplift: float = 0.0, amount: float = 400.0, term: int = 30, params=PARAMS):
    return decide(np.array([pd_control]), np.array([uplift]), np.array([amount]), np.array([term]), params)[0]


def test_profit_matches_the_formula():
    decision = one(0.04, amount=400.0)
    expected = (1 - 0.04) * 0.12 * 400.0 - 0.04 * 1.0 * 400.0
    assert decision.decision == "approve"
    assert decision.intervention is None
    assert decision.expected_profit == pytest.approx(expected)
    assert decision.limit == 400.0


def test_the_policy_is_the_economics_with_the_same_defaults():
    economics = Economics()
    assert isinstance(PolicyParams(), Economics)
    assert PolicyParams().model_dump(include=set(Economics.model_fields)) == economics.model_dump()
    assert economics.model_dump() == {
        "fee_rate_per_30_days": 0.12,
        "loss_given_default": 0.95,
        "intervention_cost": 1.0,
    }


def test_expected_profit_and_the_value_of_an_avoided_default_by_hand():
    economics = Economics(fee_rate_per_30_days=0.1, loss_given_default=0.9, intervention_cost=2.0)
    profit = expected_profit(np.array([0.2]), np.array([300.0]), np.array([60.0]), 2.0, economics)
    assert profit[0] == pytest.approx(0.8 * 0.2 * 300 - 0.2 * 0.9 * 300 - 2.0)
    value = value_of_avoided_default(np.array([300.0]), np.array([60.0]), economics)
    assert value[0] == pytest.approx((0.2 + 0.9) * 300)
    lowered = expected_profit(np.array([0.15]), np.array([300.0]), np.array([60.0]), 2.0, economics)
    assert lowered[0] - profit[0] == pytest.approx(0.05 * value[0])  # profit is linear in PD


def test_fee_scales_with_term():
    short, long = one(0.04, term=30), one(0.04, term=60)
    assert long.expected_profit == pytest.approx((1 - 0.04) * 0.24 * 400 - 0.04 * 400)
    assert long.expected_profit > short.expected_profit


def test_declines_when_expected_loss_exceeds_fee():
    # break-even PD for r=0.12, L=1 is 0.12/1.12 ~ 0.107
    decision = one(0.15)
    assert decision.decision == "decline"
    assert decision.limit == 0.0
    assert decision.intervention is None
    assert decision.expected_profit < 0


def test_intervention_chosen_when_its_uplift_pays_for_its_cost():
    decision = one(0.15, uplift=0.08)
    pd_t = 0.07
    assert decision.decision == "approve"
    assert decision.intervention == INTERVENTION
    assert decision.expected_profit == pytest.approx((1 - pd_t) * 0.12 * 400 - pd_t * 400 - 5.0)


def test_harmful_intervention_never_chosen():
    decision = one(0.04, uplift=-0.05)
    assert decision.intervention is None


def test_small_uplift_below_cost_not_bought():
    decision = one(0.04, uplift=0.001)
    assert decision.intervention is None


def test_limit_from_ladder_caps_the_amount():
    assert one(0.03, amount=5000.0).limit == 1000.0
    # 0.08 is on the second rung: max 500; profit at 500 is positive (r=0.12 over 60 days)
    assert one(0.08, amount=5000.0, term=60).limit == 500.0


def test_above_the_ladder_nothing_is_lent():
    assert ladder_limits(np.array([0.01, 0.05, 0.2, 0.21]), PARAMS.limit_ladder).tolist() == [1000, 1000, 500, 0]
    generous = PARAMS.model_copy(update={"fee_rate_per_30_days": 1.0})
    assert one(0.5, params=generous).decision == "decline"


@given(
    pd_control=st.floats(0.0, 1.0),
    uplift=st.floats(-1.0, 1.0),
    amount=st.floats(1.0, 1e6),
    term=st.integers(1, 365),
)
def test_decisions_are_consistent(pd_control, uplift, amount, term):
    decision = one(pd_control, uplift, amount, term)
    assert (decision.decision == "approve") == (decision.expected_profit > 0)
    assert 0.0 <= decision.limit <= amount
    assert np.isfinite(decision.expected_profit)
    available = [p for p in decision.expected_profit_by_option.values() if p is not None]
    assert decision.expected_profit == pytest.approx(max(available, default=0.0))


def test_vectorised_equals_one_by_one():
    rng = np.random.default_rng(0)
    pds, ups = rng.uniform(0, 0.4, 50), rng.normal(0, 0.05, 50)
    amounts, terms = rng.uniform(50, 3000, 50), rng.integers(7, 90, 50)
    batch = decide(pds, ups, amounts, terms, PARAMS)
    assert batch == [one(p, u, a, t) for p, u, a, t in zip(pds, ups, amounts, terms, strict=True)]


def test_params_reject_bad_values():
    with pytest.raises(ValidationError, match="limit_ladder"):
        PolicyParams(limit_ladder=(LimitRung(max_pd=0.2, limit=1.0), LimitRung(max_pd=0.1, limit=2.0)))
    with pytest.raises(ValidationError, match="loss_given_default"):
        PolicyParams(loss_given_default=1.5)
    with pytest.raises(ValidationError, match="Extra inputs"):
        PolicyParams(fee=0.1)


def test_reason_codes_group_features_into_at_most_four_stable_reasons():
    contributions = {
        "bill_count_90d": 0.3,
        "bill_count_180d": 0.25,  # same reason as bill_count_90d: 0.55 together
        "spend_ratio_log_90d": 0.5,
        "betting_installs": 0.2,
        "tenure_days": 0.2,  # ties with betting (0.2): broken by code, R07 before R12
        "inflow_sum_90d_usd": -0.9,
        "device_price_usd": 0.1,
        "loan_amount_usd": float("nan"),
        "mystery_signal": 0.05,
    }
    codes = reason_codes(contributions, {"mystery_signal": "A new signal"})
    assert [c.code for c in codes] == ["R06", "R03", "R07", "R12"]
    assert codes[0].features == ["bill_count_90d", "bill_count_180d"]
    assert codes[0].contribution == pytest.approx(0.55)
    assert codes[0].text == "Bill payment history"
    assert reason_codes(contributions, {}, limit=2) == codes[:2]
    assert [c.code for c in reason_codes(contributions, {}, limit=9)] == ["R06", "R03", "R07", "R12"]
    assert reason_codes({"a": -1.0, "b": float("nan")}, {}) == []


def test_unknown_features_get_their_own_stable_code():
    assert reason_family("bill count-90d x", {}) == ("RX_BILL_COUNT_90D_X", "bill count-90d x")
    assert reason_family("mystery", {"mystery": "A new signal"}) == ("RX_MYSTERY", "A new signal")
    assert reason_family("inflow_cv_90d", {}) == ("R04", "Income is irregular")  # the specific family wins
    assert reason_family("inflow_sum_7d_usd", {}) == ("R05", "Level of mobile-money income")


def test_reason_codes_of_a_batch_equal_each_row_explained_alone():
    """The vectorised family sums keep rows apart and skip non-finite contributions as the single-row call does."""
    from tala_ray.policy.decision import reason_codes_batch

    features = ["bill_count_30d", "bill_sum_90d_usd", "betting_installs", "tenure_days", "mystery_signal", "country"]
    rng = np.random.default_rng(7)
    matrix = rng.normal(0.0, 0.5, (40, len(features)))
    matrix[rng.random(matrix.shape) < 0.1] = np.nan
    matrix[0, 1] = np.inf
    matrix[1] = -1.0  # nothing raises the risk: no reason
    batch = reason_codes_batch(matrix, features, {"mystery_signal": "A new signal"}, limit=3)
    assert batch[1] == []
    for row, codes in zip(matrix, batch, strict=True):
        assert codes == reason_codes(
            dict(zip(features, row.tolist(), strict=True)), {"mystery_signal": "A new signal"}, limit=3
        )
        assert all(code.contribution > 0 for code in codes)
        assert [c.contribution for c in codes] == sorted((c.contribution for c in codes), reverse=True)


def _reasons_one_by_one(row: dict[str, float], descriptions: dict[str, str], limit: int) -> list[dict]:
    """The reason-code rules spelled out for one applicant: the reference for the vectorised sort."""
    members: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for feature, value in row.items():
        members.setdefault(reason_family(feature, descriptions), []).append(
            (feature, value if np.isfinite(value) else 0.0)
        )
    totals = {family: 0.0 for family in members}
    for family, values in members.items():
        for _, value in values:
            totals[family] += value
    raising = sorted((f for f in members if totals[f] > 0.0), key=lambda f: (-totals[f], f[0]))[: min(limit, 4)]
    return [
        {
            "code": family[0],
            "text": family[1],
            "features": [
                name
                for value, name in sorted(((v, n) for n, v in members[family] if v > 0.0), key=lambda m: (-m[0], m[1]))
            ],
            "contribution": totals[family],
        }
        for family in raising
    ]


def test_vectorised_reason_codes_follow_the_rules_with_ties():
    """Ties between reasons go to the lower code, ties between features to the name; non-finite
    contributions count as zero."""
    from tala_ray.features.definitions import FEATURE_NAMES
    from tala_ray.policy.decision import reason_code_dicts_batch

    features = [*FEATURE_NAMES, "mystery_a", "mystery_b"]
    descriptions = {"mystery_a": "A new signal"}
    rng = np.random.default_rng(11)
    for limit in (1, 3, 4, 6):
        matrix = np.round(rng.normal(0.0, 0.4, (60, len(features))), 1)  # one decimal: many ties
        matrix[rng.random(matrix.shape) < 0.05] = np.nan
        matrix[rng.random(matrix.shape) < 0.01] = np.inf
        batch = reason_code_dicts_batch(matrix, features, descriptions, limit)
        for row, codes in zip(matrix, batch, strict=True):
            assert codes == _reasons_one_by_one(dict(zip(features, row.tolist(), strict=True)), descriptions, limit)


# Several interventions: N options, each arm at its own cost.
ARMS = PARAMS.model_copy(update={"intervention_costs": {"reminder": 1.0, INTERVENTION: 5.0}})


def test_each_applicant_gets_the_arm_with_the_highest_profit_net_of_its_cost():
    pd_control = np.array([0.15, 0.15, 0.04, 0.15])
    uplift = {"reminder": np.array([0.05, 0.02, 0.0, -0.1]), INTERVENTION: np.array([0.04, 0.08, 0.0, -0.2])}
    decisions = decide(pd_control, uplift, np.full(4, 400.0), np.full(4, 30), ARMS)
    assert [d.intervention for d in decisions] == ["reminder", INTERVENTION, None, None]
    assert [d.decision for d in decisions] == ["approve", "approve", "approve", "decline"]
    assert list(decisions[0].expected_profit_by_option) == ["none", "reminder", INTERVENTION]
    pd_reminder = 0.10
    assert decisions[0].expected_profit == pytest.approx((1 - pd_reminder) * 0.12 * 400 - pd_reminder * 400 - 1.0)
    by_option = decisions[1].expected_profit_by_option
    assert by_option[INTERVENTION] == pytest.approx((1 - 0.07) * 0.12 * 400 - 0.07 * 400 - 5.0)
    assert by_option["reminder"] == pytest.approx((1 - 0.13) * 0.12 * 400 - 0.13 * 400 - 1.0)


def test_arms_as_a_mapping_or_as_matrix_columns_decide_alike():
    rng = np.random.default_rng(3)
    pds, amounts, terms = rng.uniform(0, 0.4, 80), rng.uniform(50, 3000, 80), rng.integers(7, 90, 80)
    matrix = rng.normal(0.02, 0.05, (80, 2))
    mapping = {"reminder": matrix[:, 0], INTERVENTION: matrix[:, 1]}
    assert decide(pds, matrix, amounts, terms, ARMS) == decide(pds, mapping, amounts, terms, ARMS)
    chosen = {d.intervention for d in decide(pds, matrix, amounts, terms, ARMS)}
    assert {"reminder", INTERVENTION} <= chosen  # both arms are someone's best option


def test_one_arm_named_in_intervention_costs_is_the_one_arm_policy():
    rng = np.random.default_rng(4)
    pds, ups = rng.uniform(0, 0.4, 60), rng.normal(0, 0.05, 60)
    amounts, terms = rng.uniform(50, 3000, 60), rng.integers(7, 90, 60)
    named = PARAMS.model_copy(update={"intervention_costs": {INTERVENTION: PARAMS.intervention_cost}})
    assert decide(pds, ups, amounts, terms, named) == decide(pds, ups, amounts, terms, PARAMS)
    assert decide(pds, {INTERVENTION: ups}, amounts, terms, PARAMS) == decide(pds, ups, amounts, terms, PARAMS)


def test_uplift_arms_must_match_the_costed_arms():
    one_row = (np.array([0.1]), np.array([400.0]), np.array([30]))
    with pytest.raises(ValueError, match="do not match intervention_costs"):
        decide(one_row[0], {"reminder": np.array([0.01])}, *one_row[1:], ARMS)
    with pytest.raises(ValueError, match="columns for the 2 arms"):
        decide(one_row[0], np.array([0.01]), *one_row[1:], ARMS)


def test_intervention_costs_are_checked():
    with pytest.raises(ValidationError, match="intervention_costs"):
        PolicyParams(intervention_costs={"none": 1.0})
    with pytest.raises(ValidationError, match="at least 0"):
        PolicyParams(intervention_costs={"reminder": -1.0})
    with pytest.raises(ValidationError, match="at least one intervention arm"):
        PolicyParams(intervention_costs={})
    assert ARMS.arm_costs() == {"reminder": 1.0, INTERVENTION: 5.0}
    assert PolicyParams().arm_costs() == {INTERVENTION: 1.0}
    assert "intervention_costs" not in PolicyParams().model_dump()  # a one-arm policy's config is as it was
    assert PolicyParams.model_validate(ARMS.model_dump(mode="json")) == ARMS  # survives a user_config round trip
