"""The economics of a loan, in the application's local currency: one model and one expected-profit formula.

For a loan of `lent` over `term_days`, fee rate r per 30 days, loss given default L and a cost c
spent on it (an intervention), the expected profit at default probability PD is
`(1 - PD)·r·(term/30)·lent - PD·L·lent - c`. The serving policy, its evaluation against the truth
and the uplift experiments' evaluation all use this formula with the same `Economics`.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tala_ray.data.schema import INTERVENTION

NO_INTERVENTION = "none"  # the option without an intervention (the control arm)


class Economics(BaseModel):
    """Fee, loss and intervention costs; amounts are in the application's local currency (the loan's).

    One intervention (`reminder_ontime_discount`) costs `intervention_cost`; several arms each name
    their own cost in `intervention_costs` (arm -> cost), in the order the options are offered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fee_rate_per_30_days: float = Field(0.12, gt=0.0, le=1.0, description="Fee r charged per 30 days of term.")
    loss_given_default: float = Field(0.95, ge=0.0, le=1.0, description="Share L of the amount lost on default.")
    intervention_cost: float = Field(
        1.0, ge=0.0, description="Cost c of the intervention per loan, in the application's local currency."
    )
    intervention_costs: dict[str, float] | None = Field(
        None,
        exclude_if=lambda costs: costs is None,
        description="Several interventions: arm -> its cost per loan (local currency); intervention_cost unused.",
    )

    @model_validator(mode="after")
    def _one_cost_per_arm(self) -> Economics:
        if self.intervention_costs is None:
            return self
        if not self.intervention_costs:
            raise ValueError("intervention_costs: name at least one arm")
        if NO_INTERVENTION in self.intervention_costs:
            raise ValueError(f"intervention_costs: {NO_INTERVENTION!r} is the option without an intervention")
        negative = [arm for arm, cost in self.intervention_costs.items() if not cost >= 0.0]
        if negative:
            raise ValueError(f"intervention_costs: the costs of {negative} must be at least 0")
        return self

    def arm_costs(self) -> dict[str, float]:
        """Each intervention arm's cost, in the order the options are offered."""
        return (
            dict(self.intervention_costs)
            if self.intervention_costs is not None
            else {INTERVENTION: self.intervention_cost}
        )


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
