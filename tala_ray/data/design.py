"""The experiment a synthetic world runs: its intervention arms and the outcomes it records.

By default (`ONE_ARM`) the world is what it always was: one intervention (`reminder_ontime_discount`),
a binary outcome (`defaulted`), and the same bytes. A design can instead run several arms (treatment
codes 0 = none, 1 = `reminder`, 2 = `reminder_ontime_discount`) and/or record a continuous outcome,
`days_late`: days after the due date until the loan is repaid, a default counting as the write-off
(`WRITE_OFF_DAYS`). Every arm's true default probability and every option's expected days late are in
the truth table (`tala_ray.data.schema.truth_pd_column`, `truth_expected_column`).

How the arms work (effects on the default logit; negative helps repayment):

- `reminder_ontime_discount`: the one-arm world's effect: strong for traders (most when they pay
  bills irregularly), mild for casual earners, none for the salaried, harmful for heavy bettors;
- `reminder` (cheap): helps whoever pays bills irregularly (the forgetful), a little the casual
  earners; does nothing for the rest, and neither helps nor harms heavy bettors unless forgetful.

Days late: a repaid loan's days late follow an exponential law truncated below the write-off, its
mean set by discipline-revealing behaviour (bills) and occupation, and shortened by the arms (a
reminder most for the forgetful, the discount most for traders). The same uniform draw that decides
the default places a repayer within that law (common random numbers across options), so every
option's outcome is drawn consistently and no random draw is added: a design changes the treatment
and outcome columns only, never the applicants, their events before the application or earlier loans.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tala_ray.data.schema import INTERVENTION, NO_INTERVENTION

REMINDER = "reminder"
ARMS = (REMINDER, INTERVENTION)  # the arms a world can run, in treatment-code order when both run
DAYS_LATE = "days_late"
WRITE_OFF_DAYS = 30.0  # a loan not repaid this many days after its due date is a default


class Design(BaseModel):
    """Which intervention arms the experiment runs (treatment codes 1, 2, ... in this order) and whether
    the continuous outcome `days_late` is recorded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arms: tuple[str, ...] = Field((INTERVENTION,), description=f"Intervention arms, from {list(ARMS)}.")
    days_late: bool = Field(False, description="Record `days_late`, a continuous outcome, and its truth.")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [arm for arm in arms if arm not in ARMS]
        if unknown or not arms or len(set(arms)) != len(arms):
            raise ValueError(f"give distinct arms from {list(ARMS)}; got {list(arms)}")
        return arms

    @property
    def options(self) -> tuple[str, ...]:
        """None, then the arms: index = treatment code."""
        return (NO_INTERVENTION, *self.arms)

    @property
    def is_one_arm(self) -> bool:
        """The original world: one intervention, binary outcome only."""
        return self.arms == (INTERVENTION,) and not self.days_late


ONE_ARM = Design()


def reminder_effect_logit(occupation: np.ndarray, bills: np.ndarray, betting_installs: np.ndarray) -> np.ndarray:
    """The reminder's effect on the default logit (occupation: 0 salaried, 1 trader, 2 casual)."""
    forgetful = bills <= 1
    effect = np.where(forgetful, -0.75, np.where(occupation == 2, -0.15, 0.0))
    return np.where((betting_installs >= 2) & ~forgetful, 0.0, effect)


def assign_arms(uniform: np.ndarray, any_arm: np.ndarray, arms: int) -> np.ndarray:
    """Treatment codes from one uniform draw per row: none when `uniform >= any_arm` (the probability of
    an intervention), else one of the `arms` arms with equal probability."""
    treated = uniform < any_arm
    within = np.minimum((uniform / any_arm * arms).astype(np.int64), arms - 1)
    return np.where(treated, 1 + within, 0).astype(np.int8)


def mean_days_late(occupation: np.ndarray, bills: np.ndarray, betting_installs: np.ndarray) -> np.ndarray:
    """The mean days late of a repaid loan without intervention (before truncation at the write-off)."""
    base = np.select([occupation == 1, occupation == 2], [5.0, 6.0], 2.5)
    return base * np.where(bills <= 1, 1.8, 1.0) * np.where(betting_installs >= 2, 1.3, 1.0)


def days_late_factor(arm: str, occupation: np.ndarray, bills: np.ndarray, betting_installs: np.ndarray) -> np.ndarray:
    """How an option scales a repayer's mean days late."""
    forgetful = bills <= 1
    if arm == REMINDER:
        return np.where(forgetful, 0.45, 0.9)
    if arm == INTERVENTION:
        factor = np.select([occupation == 1, occupation == 2], [0.6, 0.8], 1.0)
        return np.where(betting_installs >= 2, 1.1, factor)
    return np.ones(len(occupation))


def _truncated_scale(mean: np.ndarray) -> np.ndarray:
    return 1.0 - np.exp(-WRITE_OFF_DAYS / mean)


def days_late(default_draw: np.ndarray, pd_option: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Days late under an option: the write-off for a default (draw below the option's PD), else the
    repayer's place in the truncated exponential law given by where the draw lies above the PD."""
    within = np.clip((default_draw - pd_option) / np.maximum(1.0 - pd_option, 1e-12), 0.0, 1.0 - 1e-12)
    repaid = -mean * np.log1p(-within * _truncated_scale(mean))
    return np.where(default_draw < pd_option, WRITE_OFF_DAYS, repaid)


def expected_days_late(pd_option: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """E[days late] under an option: PD x the write-off + (1 - PD) x the truncated law's mean."""
    scale = _truncated_scale(mean)
    repaid = mean - WRITE_OFF_DAYS * np.exp(-WRITE_OFF_DAYS / mean) / scale
    return pd_option * WRITE_OFF_DAYS + (1.0 - pd_option) * repaid
