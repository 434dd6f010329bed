"""The decision: pick the most profitable intervention, size the limit, explain a decline.

Lending amount A with option t (no intervention, or an intervention arm at its cost c_t) earns in
expectation `tala_ray.policy.economics.expected_profit` at that option's PD_t:
`(1 - PD_t)·r·(term/30)·A - PD_t·L·A - c_t`, all in the application's local currency. The options
are `none` and every arm of the policy (`PolicyParams.arm_costs`: one intervention, or several), each
arm's PD_t being the PD without intervention less that arm's uplift. The policy approves when the
best option earns more than zero. Pure functions on NumPy arrays: no Ray, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tala_ray.policy.economics import NO_INTERVENTION, Economics, InterventionCosts, arm_costs, expected_profit

Uplift = np.ndarray | Sequence[float] | Mapping[str, np.ndarray | Sequence[float]]
"""Each application's uplift (reduction in default probability): one array for a single intervention
arm, or arm -> array (or an (applications x arms) matrix, columns in the policy's arm order)."""
MAX_REASON_CODES = 4


class LimitRung(BaseModel):
    """Applicants whose default probability is at most `max_pd` may borrow up to `limit`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pd: float = Field(gt=0.0, le=1.0, description="Upper bound (inclusive) on the default probability.")
    limit: float = Field(gt=0.0, description="Largest amount lent at this risk, local currency.")


class PolicyParams(Economics):
    """The policy's run-time knobs (the `user_config` of the policy deployment): the economics
    (fee, loss given default, intervention cost; local currency) and the limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit_ladder: tuple[LimitRung, ...] = Field(
        (
            LimitRung(max_pd=0.05, limit=20_000.0),
            LimitRung(max_pd=0.10, limit=10_000.0),
            LimitRung(max_pd=0.20, limit=5_000.0),
            LimitRung(max_pd=0.35, limit=2_000.0),
        ),
        min_length=1,
        description="Rungs in increasing max_pd; above the last rung nothing is lent.",
    )
    max_reason_codes: int = Field(MAX_REASON_CODES, ge=1, le=MAX_REASON_CODES)
    intervention_costs: InterventionCosts | None = Field(
        None,
        exclude_if=lambda costs: costs is None,
        description="Several interventions: arm -> its cost per loan (local currency), in the uplift model's "
        "arm order; intervention_cost is then unused. Default: the one intervention at intervention_cost.",
    )

    @model_validator(mode="after")
    def _ladder_increasing(self) -> PolicyParams:
        bounds = [rung.max_pd for rung in self.limit_ladder]
        if any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)):
            raise ValueError(f"limit_ladder: max_pd must strictly increase, got {bounds}")
        return self

    def arm_costs(self) -> dict[str, float]:
        """Each intervention arm's cost, in the arms' order (`tala_ray.policy.economics.arm_costs`)."""
        return arm_costs(self, self.intervention_costs)


class ReasonCode(BaseModel):
    """One principal reason for a decline: a stable code and a human-readable text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    text: str
    features: list[str] = Field(description="The applicant's features behind this reason, largest contribution first.")
    contribution: float = Field(description="Summed contribution of those features to the risk score.")


class PolicyDecision(BaseModel):
    """What the policy decided for one application."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "decline"]
    limit: float = Field(ge=0.0)
    intervention: str | None
    expected_profit: float
    expected_profit_by_option: dict[str, float | None] = Field(
        description="Expected profit of each option; None where the ladder lends nothing with it."
    )


def ladder_limits(pd_values: np.ndarray, ladder: tuple[LimitRung, ...]) -> np.ndarray:
    """The limit of the first rung whose max_pd covers each PD (0 above the last rung)."""
    bounds = np.array([rung.max_pd for rung in ladder])
    limits = np.array([rung.limit for rung in ladder] + [0.0])
    return limits[np.searchsorted(bounds, pd_values, side="left")]


def arm_uplifts(uplift: Uplift, params: PolicyParams) -> dict[str, np.ndarray]:
    """Arm -> uplift array, in the policy's arm order; an arm without a cost, or a cost without an
    uplift, is a ValueError naming them."""
    arms = list(params.arm_costs())
    if isinstance(uplift, Mapping):
        if set(uplift) != set(arms):
            raise ValueError(f"uplift: arms {sorted(uplift)} do not match intervention_costs' arms {sorted(arms)}")
        return {arm: np.asarray(uplift[arm], dtype=float) for arm in arms}
    values = np.asarray(uplift, dtype=float)
    columns = values.reshape(-1, 1) if values.ndim == 1 else values
    if values.ndim not in (1, 2) or columns.shape[1] != len(arms):
        raise ValueError(f"uplift: {columns.shape[1:]} columns for the {len(arms)} arms {arms}")
    return {arm: values if values.ndim == 1 else columns[:, k] for k, arm in enumerate(arms)}


def option_profits(
    pd_control: np.ndarray, uplift: Uplift, amount: np.ndarray, term_days: np.ndarray, params: PolicyParams
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Expected profit and offered amount per option (none, then each arm) for every application."""
    arms = arm_uplifts(uplift, params)
    pd_by_option = {NO_INTERVENTION: np.clip(pd_control, 0.0, 1.0)}
    pd_by_option |= {arm: np.clip(pd_control - arm_uplift, 0.0, 1.0) for arm, arm_uplift in arms.items()}
    cost_by_option = {NO_INTERVENTION: 0.0, **params.arm_costs()}
    profits, offered = {}, {}
    for option, pd_t in pd_by_option.items():
        lent = np.minimum(amount, ladder_limits(pd_t, params.limit_ladder))
        profit = expected_profit(pd_t, lent, term_days, cost_by_option[option], params)
        profits[option] = np.where(lent > 0, profit, -np.inf)
        offered[option] = lent
    return profits, offered


def decide(
    pd_control: np.ndarray, uplift: Uplift, amount: np.ndarray, term_days: np.ndarray, params: PolicyParams
) -> list[PolicyDecision]:
    """Approve with the most profitable option when its expected profit is positive.

    Ties go to the earlier option (no intervention first, then the arms in order: nothing is spent for no gain).
    """
    return [PolicyDecision(**fields) for fields in decision_dicts(pd_control, uplift, amount, term_days, params)]


def decision_dicts(
    pd_control: np.ndarray, uplift: Uplift, amount: np.ndarray, term_days: np.ndarray, params: PolicyParams
) -> list[dict[str, Any]]:
    """`decide` as plain dicts (`PolicyDecision`'s fields), computed column-wise: what serving sends on."""
    pd_control, amount, term_days = (np.asarray(a, dtype=float) for a in (pd_control, amount, term_days))
    profits, offered = option_profits(pd_control, uplift, amount, term_days, params)
    options = list(profits)
    table = np.column_stack([profits[o] for o in options])
    best = np.argmax(table, axis=1)
    rows = np.arange(len(best))
    best_profit = table[rows, best]
    approved = best_profit > 0.0
    limits = np.where(approved, np.column_stack([offered[o] for o in options])[rows, best], 0.0)
    expected = np.where(np.isfinite(best_profit), best_profit, 0.0)
    interventions = [None if option == NO_INTERVENTION else option for option in options]
    by_option = table.astype(object)
    by_option[~np.isfinite(table)] = None  # JSON has no infinity: an option that lends nothing has no profit
    return [
        {
            "decision": "approve" if ok else "decline",
            "limit": limit,
            "intervention": interventions[choice] if ok else None,
            "expected_profit": profit,
            "expected_profit_by_option": dict(zip(options, profits_of_row, strict=True)),
        }
        for ok, limit, choice, profit, profits_of_row in zip(
            approved.tolist(), limits.tolist(), best.tolist(), expected.tolist(), by_option.tolist(), strict=True
        )
    ]


class ReasonFamily(BaseModel):
    """One adverse-action reason: a stable code and text for every feature whose name starts with a prefix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    text: str
    prefixes: tuple[str, ...]


# First match wins, so the more specific prefixes come first. Codes never change meaning.
REASON_FAMILIES: tuple[ReasonFamily, ...] = (
    ReasonFamily(
        code="R01",
        text="Requested amount is high relative to income",
        prefixes=("loan_to_monthly_inflow", "loan_amount"),
    ),
    ReasonFamily(code="R02", text="Requested loan term", prefixes=("term_days",)),
    ReasonFamily(
        code="R03",
        text="Spending is high relative to income",
        prefixes=("spend_ratio", "net_flow", "outflow_", "days_since_last_outflow"),
    ),
    ReasonFamily(
        code="R04",
        text="Income is irregular",
        prefixes=("inflow_payday", "inflow_monthly_cv", "inflow_cv", "inflow_largest_share"),
    ),
    ReasonFamily(code="R05", text="Level of mobile-money income", prefixes=("inflow_", "days_since_last_inflow")),
    ReasonFamily(code="R06", text="Bill payment history", prefixes=("bill_",)),
    ReasonFamily(code="R07", text="Betting app activity", prefixes=("betting_",)),
    ReasonFamily(
        code="R08",
        text="Repayment history on earlier loans",
        prefixes=("defaulted_loan", "overdue_loan", "share_loans_repaid", "mean_days_late", "repaid_loan"),
    ),
    ReasonFamily(
        code="R09", text="Amount of earlier borrowing", prefixes=("prior_loan", "open_loan", "days_since_last_loan")
    ),
    ReasonFamily(code="R10", text="Airtime top-up activity", prefixes=("airtime_", "days_since_last_topup")),
    ReasonFamily(
        code="R11", text="Gaps in account activity", prefixes=("event_count", "days_since_last_event", "longest_gap")
    ),
    ReasonFamily(code="R12", text="Length of time as a customer", prefixes=("tenure",)),
    ReasonFamily(code="R13", text="Device profile", prefixes=("device_",)),
    ReasonFamily(
        code="R14",
        text="Installed apps profile",
        prefixes=("finance_installs", "social_installs", "productivity_installs", "gaming_installs"),
    ),
    ReasonFamily(code="R15", text="Market risk level", prefixes=("country",)),
)


@lru_cache(maxsize=4096)
def _covering_family(feature: str) -> tuple[str, str] | None:
    """(code, text) of the first family whose prefixes cover the feature (looked up once per name)."""
    for family in REASON_FAMILIES:
        if feature.startswith(family.prefixes):
            return family.code, family.text
    return None


def reason_family(feature: str, descriptions: Mapping[str, str]) -> tuple[str, str]:
    """(code, text) of the reason a feature belongs to; a feature no family covers gets its own code."""
    covering = _covering_family(feature)
    if covering is not None:
        return covering
    code = "RX_" + re.sub(r"[^A-Z0-9]+", "_", feature.upper()).strip("_")
    return code, descriptions.get(feature, feature.replace("_", " "))


def reason_codes(
    contributions: Mapping[str, float], descriptions: Mapping[str, str], limit: int = MAX_REASON_CODES
) -> list[ReasonCode]:
    """The reasons that raised this applicant's risk most: each reason's features' contributions
    are summed; positive sums only, largest first (ties by code), at most `limit` (never above four)."""
    values = np.array([[float(v) for v in contributions.values()]], dtype=np.float64).reshape(1, len(contributions))
    return reason_codes_batch(values, list(contributions), descriptions, limit)[0]


def reason_codes_batch(
    contributions: np.ndarray, features: Sequence[str], descriptions: Mapping[str, str], limit: int = MAX_REASON_CODES
) -> list[list[ReasonCode]]:
    """`reason_codes` of every row of a (rows x features) contribution matrix, the family sums
    vectorised over the rows (non-finite contributions are skipped)."""
    return [
        [ReasonCode(**code) for code in row]
        for row in reason_code_dicts_batch(contributions, features, descriptions, limit)
    ]


def reason_code_dicts_batch(
    contributions: np.ndarray, features: Sequence[str], descriptions: Mapping[str, str], limit: int = MAX_REASON_CODES
) -> list[list[dict[str, Any]]]:
    """`reason_codes_batch` as plain dicts (`ReasonCode`'s fields): what a response carries.

    The sorting is done by numpy for all rows and reasons at once: reasons by total (a stable sort
    over the codes, so ties go to the lower code); the columns grouped by reason and ordered by
    name, then each reason's features by contribution (a stable sort, so ties go by name).
    """
    values = np.where(np.isfinite(contributions), contributions, 0.0)
    families = sorted({reason_family(feature, descriptions) for feature in features})
    index = {family: k for k, family in enumerate(families)}
    family_of = [index[reason_family(feature, descriptions)] for feature in features]
    totals = np.zeros((values.shape[0], len(families)))
    for column, k in enumerate(family_of):
        totals[:, k] += values[:, column]  # feature order, as a running sum: the same floats as one at a time
    grouped = sorted(range(len(features)), key=lambda column: (family_of[column], features[column]))
    grouped_names = [features[column] for column in grouped]
    grouped_values = values[:, grouped]
    grouped_family = np.broadcast_to(np.array([family_of[column] for column in grouped]), grouped_values.shape)
    starts = (
        np.searchsorted(grouped_family[0], np.arange(len(families))) if len(grouped) else np.zeros(0, dtype=np.int64)
    )
    ranked = np.lexsort((-grouped_values, grouped_family), axis=-1).tolist()  # by reason, then largest first
    positive = np.add.reduceat(grouped_values > 0.0, starts, axis=1).tolist() if len(grouped) else []
    strongest = np.argsort(-totals, axis=1, kind="stable")[:, : min(limit, MAX_REASON_CODES)]
    strongest_totals = np.take_along_axis(totals, strongest, axis=1)
    first = starts.tolist()
    out = []
    for row, (ks, row_totals) in enumerate(zip(strongest.tolist(), strongest_totals.tolist(), strict=True)):
        codes = []
        for k, total in zip(ks, row_totals, strict=True):
            if not total > 0.0:  # the rest are no larger: only reasons that raised the risk
                break
            code, text = families[k]
            members = ranked[row][first[k] : first[k] + positive[row][k]]
            codes.append(
                {"code": code, "text": text, "features": [grouped_names[j] for j in members], "contribution": total}
            )
        out.append(codes)
    return out
