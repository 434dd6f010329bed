"""The economics of a loan, in the application's local currency: one model and one expected-profit formula.

For a loan of `lent` over `term_days`, fee rate r per 30 days, loss given default L and a cost c
spent on it (an intervention), the expected profit at default probability PD is
`(1 - PD)·r·(term/30)·lent - PD·L·lent - c`. The serving policy, its evaluation against the truth
and the uplift experiments' evaluation all use this formula with the same `Economics`.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tala_ray.data.schema import INTERVENTION, NO_INTERVENTION


class Economics(BaseModel):
    """Fee, loss and intervention cost; amounts are in the application's local currency (the loan's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fee_rate_per_30_days: float = Field(0.12, gt=0.0, le=1.0, description="Fee r charged per 30 days of term.")
    loss_given_default: float = Field(0.95, ge=0.0, le=1.0, description="Share L of the amount lost on default.")
    intervention_cost: float = Field(
        1.0, ge=0.0, description="Cost c of the intervention per loan, in the application's local currency."
    )


def _checked_arm_costs(costs: dict[str, float]) -> dict[str, float]:
    if not costs:
        raise ValueError("name at least one intervention arm")
    if NO_INTERVENTION in costs:
        raise ValueError(f"{NO_INTERVENTION!r} is the option without an intervention, not an arm")
    negative = [arm for arm, cost in costs.items() if not cost >= 0.0]
    if negative:
        raise ValueError(f"the costs of {negative} must be at least 0")
    return costs


InterventionCosts = Annotated[dict[str, float], AfterValidator(_checked_arm_costs)]
"""Several interventions: arm -> its cost per loan (local currency). The order is the arms' order:
arm k (from 1) is treatment code k of the data, code 0 being no intervention."""


def arm_costs(economics: Economics, intervention_costs: dict[str, float] | None) -> dict[str, float]:
    """Each intervention arm's cost, in the arms' order: the named arms, or else the one intervention
    (`reminder_ontime_discount`) at the economics' `intervention_cost`."""
    if intervention_costs is None:
        return {INTERVENTION: economics.intervention_cost}
    return dict(intervention_costs)


def expected_profit(
    pd: np.ndarray | float,
    lent: np.ndarray | float,
    term_days: np.ndarray | float,
    cost: np.ndarray | float,
    economics: Economics,
) -> np.ndarray:
    """Expected profit of lending `lent` (local currency) at default probability `pd`, spending `cost` on it."""
    fee = economics.fee_rate_per_30_days * term_days / 30.0
    return (1.0 - pd) * fee * lent - pd * economics.loss_given_default * lent - cost


def value_of_avoided_default(
    lent: np.ndarray | float, term_days: np.ndarray | float, economics: Economics
) -> np.ndarray | float:
    """What one unit of default probability costs on a loan: the profit at PD 0 minus the profit at PD 1
    (the fee forgone plus the loss), local currency. Profit is linear in PD, so an intervention that lowers
    PD by `effect` earns `effect x value - cost`."""
    return expected_profit(0.0, lent, term_days, 0.0, economics) - expected_profit(1.0, lent, term_days, 0.0, economics)
