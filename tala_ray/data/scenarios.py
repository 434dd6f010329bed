"""The live period after the training period, and the change planted in it (a scenario).

The live period starts where the training period's applications end and lasts `LiveSpec.days`.
From `onset_day` on, a scenario changes the world in a known way:

- `income_shock`: in one country, a share of the mobile-money inflows stop (lost work, unpaid
  wages) and the rest shrink (the applicants' features follow; the default risk rises through them:
  covariate shift);
- `new_channel`: an acquisition channel brings a share of new, thin-file applicants (recent sign-ups,
  little activity, cheaper phones: covariate shift);
- `betting_wave`: half the applicants bet more (more betting-app installs), their default risk rises
  beyond what their features show, and the intervention harms them (concept drift);
- `none`: nothing changes.

`ScenarioRecord` (in the world's manifest) says what changed, where and from when; the per-application
truth (true PD with and without the intervention, and whether the application is affected) is in the
live tables.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tala_ray.data import schema
from tala_ray.data.outcomes import potential_outcomes_table
from tala_ray.data.world import (
    APPLICATION_SPAN_DAYS,
    APPLICATION_START_MS,
    COUNTRY_CODES,
    DAY_MS,
    HISTORY_DAYS,
    Applicants,
    Behaviour,
    Period,
    RawEvents,
    _subset,
    simulate,
)

ScenarioName = Literal["none", "income_shock", "new_channel", "betting_wave"]
LIVE_START_MS = APPLICATION_START_MS + APPLICATION_SPAN_DAYS * DAY_MS
LIVE_STREAM = 1  # the live chunks' random streams: [seed, chunk, LIVE_STREAM] and [..., SCENARIO_STREAM]
SCENARIO_STREAM = 1

INCOME_SHOCK_LOST = 0.4  # share of the shocked country's inflows that stop from the onset
INCOME_SHOCK_FACTOR = 0.6  # the amount of an inflow that still comes, against before
NEW_CHANNEL_SHARE = 0.4  # of the applications from the onset
NEW_CHANNEL_TENURE_DAYS = 40.0  # mean days since sign-up of the channel's applicants (others: ~400)
NEW_CHANNEL_ACTIVITY = 0.5  # their event rates against others'
NEW_CHANNEL_DEVICE_PRICE = 0.6
BETTING_WAVE_INSTALLS_PER_MONTH = 3.0  # extra betting-app installs of a bettor from the onset
BETTING_WAVE_LOGIT = 0.5  # a wave bettor's default logit beyond what the features show
BETTING_WAVE_EFFECT_LOGIT = 0.5  # the intervention's effect on a wave bettor's default logit (harmful)

SCORES = ("default_probability", "uplift")
LOAN_HISTORY = (  # earlier loans' outcomes are drawn from the applicant's present risk, so they follow it
    "share_loans_repaid",
    "defaulted_loan_count",
    "repaid_loan_count",
    "overdue_loan_count",
    "mean_days_late",
)
THIN_FILE_FEATURES = (  # every feature of the history's length or the phone: all but the country,
    "tenure_days",  # the OS, the device's age and the loan asked for
    "prior_loan",
    "repaid_loan",
    "defaulted_loan",
    "share_loans_repaid",
    "mean_days_late",
    "overdue_loan",
    "open_loan",
    "days_since_last",
    "inflow_",
    "outflow_",
    "airtime_",
    "bill_",
    "spend_ratio_",
    "net_flow_",
    "event_count",
    "longest_gap",
    "device_price_usd",
    "loan_to_monthly_inflow_log",
    "finance_installs",
    "social_installs",
    "productivity_installs",
    "gaming_installs",
    "betting_installs",
)


class LiveSpec(BaseModel):
    """The live period: how many applications, how long, and the scenario planted in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    applicants: int = Field(0, ge=0, description="Applications in the live period (0: no live period).")
    days: int = Field(56, ge=1, le=366, description="Length of the live period in days.")
    scenario: ScenarioName = Field("none", description="The change planted in the live period.")
    onset_day: int = Field(28, ge=0, description="Day of the live period (0 = its first) the change starts.")
    country: str = Field("KE", description="The country an income shock hits.")

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        if value not in schema.COUNTRIES:
            raise ValueError(f"must be one of {', '.join(schema.COUNTRIES)}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _onset_inside(self) -> LiveSpec:
        if self.onset_day >= self.days:
            raise ValueError(
                f"onset_day: must fall inside the live period (< days = {self.days}), got {self.onset_day}"
            )
        return self

    @property
    def onset_ms(self) -> int:
        return LIVE_START_MS + self.onset_day * DAY_MS


class ScenarioRecord(BaseModel):
    """What the scenario changed, where and from when (the truth a monitor is judged against)."""

    model_config = ConfigDict(extra="forbid")

    name: ScenarioName
    live_start: datetime
    live_end: datetime
    onset: datetime | None = Field(description="When the change starts (None: no change).")
    description: str
    countries: list[str] = Field(description="The countries where it happens.")
    changed_features: list[str] = Field(
        description="Features (names or name prefixes) and scores whose distribution changes."
    )
    concept_drift: bool = Field(description="Whether the default risk given the features changes.")


def scenario_record(live: LiveSpec) -> ScenarioRecord:
    """The record of `live`'s scenario."""
    stamp = lambda ms: datetime.fromtimestamp(ms / 1000, UTC)  # noqa: E731
    everywhere = list(schema.COUNTRIES)
    described = {
        "none": ("nothing changes", everywhere, [], False),
        "income_shock": (
            f"in {live.country}, {INCOME_SHOCK_LOST:.0%} of the mobile-money inflows stop and the rest fall to "
            f"{INCOME_SHOCK_FACTOR:.0%} of what they were",
            [live.country],
            [
                "inflow_",
                "days_since_last_inflow",
                "spend_ratio_",
                "net_flow_",
                "loan_to_monthly_inflow_log",
                *LOAN_HISTORY,
                *SCORES,
            ],
            False,
        ),
        "new_channel": (
            f"a new acquisition channel brings {NEW_CHANNEL_SHARE:.0%} of applications: recent sign-ups "
            "(younger accounts) with thin files (little activity, no earlier loans) and cheaper phones",
            everywhere,
            [*THIN_FILE_FEATURES, *SCORES],
            False,
        ),
        "betting_wave": (
            "half the applicants bet more (betting-app installs), default more than their features show, "
            "and the intervention harms them",
            everywhere,
            [
                "betting_installs",
                "event_count_90d",
                "days_since_last_event",
                "longest_gap_days",
                *LOAN_HISTORY,
                *SCORES,
            ],
            True,
        ),
    }
    description, countries, changed, concept = described[live.scenario]
    return ScenarioRecord(
        name=live.scenario,
        live_start=stamp(LIVE_START_MS),
        live_end=stamp(LIVE_START_MS + live.days * DAY_MS),
        onset=None if live.scenario == "none" else stamp(live.onset_ms),
        description=description,
        countries=countries,
        changed_features=changed,
        concept_drift=concept,
    )


@dataclass(frozen=True)
class LivePeriod(Period):
    """The live period without a change; the scenarios below change it from `onset_ms`."""

    onset_ms: int = LIVE_START_MS
    rng: np.random.Generator | None = None  # the scenario's own stream: the base draws stay as without it

    def affected(self, a: Applicants) -> np.ndarray:  # noqa: ARG002
        """Which applications the change reaches."""
        return np.zeros(len(a.ids), dtype=bool)

    def _draws(self) -> np.random.Generator:
        if self.rng is None:
            raise ValueError("a scenario's period needs its own random stream (rng)")
        return self.rng


@dataclass(frozen=True)
class IncomeShock(LivePeriod):
    country_index: int = 0

    def affected(self, a: Applicants) -> np.ndarray:
        return (a.country_index == self.country_index) & (a.app_time >= self.onset_ms)

    def events(self, a: Applicants, ev: RawEvents) -> RawEvents:
        hit = (ev.kind == "mm_in") & (ev.time >= self.onset_ms) & (a.country_index[ev.idx] == self.country_index)
        lost = hit & (self._draws().random(len(ev.idx)) < INCOME_SHOCK_LOST)
        amount = np.where(hit, np.round(ev.amount * INCOME_SHOCK_FACTOR, 2), ev.amount)
        return _subset(replace(ev, amount=amount), ~lost)


def _id_uniform(ids: np.ndarray, salt: int) -> np.ndarray:
    """A uniform in [0, 1) per id, fixed by the id alone (a SplitMix64 hash)."""
    with np.errstate(over="ignore"):
        x = ids.astype(np.uint64) + np.uint64(salt) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True)
class NewChannel(LivePeriod):
    def affected(self, a: Applicants) -> np.ndarray:
        return (a.app_time >= self.onset_ms) & (_id_uniform(a.ids, salt=17) < NEW_CHANNEL_SHARE)

    def applicants(self, a: Applicants) -> Applicants:
        channel = self.affected(a)
        rng = self._draws()
        tenure = np.where(channel, 3 + rng.exponential(NEW_CHANNEL_TENURE_DAYS, len(a.ids)), 0.0)
        signup = np.where(channel, a.app_time - (tenure * DAY_MS).astype(np.int64), a.signup_time)
        window_start = np.maximum(signup, a.app_time - HISTORY_DAYS * DAY_MS)
        gap_at = (a.gap_start - a.window_start) / (a.window_end - a.window_start)  # the gap keeps its place
        return replace(
            a,
            signup_time=signup,
            window_start=window_start,
            gap_start=np.where(
                channel, window_start + (gap_at * (a.window_end - window_start)).astype(np.int64), a.gap_start
            ),
            activity=np.where(channel, a.activity * NEW_CHANNEL_ACTIVITY, a.activity),
            device_price_usd=np.where(
                channel, np.round(a.device_price_usd * NEW_CHANNEL_DEVICE_PRICE, 2), a.device_price_usd
            ),
        )


@dataclass(frozen=True)
class BettingWave(LivePeriod):
    def _bettors(self, a: Applicants) -> np.ndarray:
        return a.betting > 0.0

    def affected(self, a: Applicants) -> np.ndarray:
        return self._bettors(a) & (a.app_time >= self.onset_ms)

    def events(self, a: Applicants, ev: RawEvents) -> RawEvents:
        rng = self._draws()
        start = np.maximum(a.window_start, self.onset_ms)
        months = np.maximum(a.window_end - start, 0) / (30.4 * DAY_MS)
        counts = rng.poisson(np.where(self._bettors(a), BETTING_WAVE_INSTALLS_PER_MONTH * months, 0.0))
        idx = np.repeat(np.arange(len(a.ids)), counts)
        times = start[idx] + (rng.random(len(idx)) * (a.window_end[idx] - start[idx])).astype(np.int64)
        return RawEvents(
            idx=np.concatenate([ev.idx, idx]),
            time=np.concatenate([ev.time, times]),
            kind=np.concatenate([ev.kind, np.full(len(idx), "app_install")]),
            amount=np.concatenate([ev.amount, np.full(len(idx), np.nan)]),
            category=np.concatenate([ev.category, np.full(len(idx), "betting", dtype=object)]),
        )

    def shock(self, a: Applicants, b: Behaviour, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: ARG002
        hit = self.affected(a)
        return BETTING_WAVE_LOGIT * hit, np.where(hit, BETTING_WAVE_EFFECT_LOGIT, tau)


def live_period(live: LiveSpec, rng: np.random.Generator) -> LivePeriod:
    """The period of `live`'s scenario, drawing its own randomness from `rng`."""
    common = {"start_ms": LIVE_START_MS, "span_days": live.days, "onset_ms": live.onset_ms, "rng": rng}
    if live.scenario == "income_shock":
        return IncomeShock(**common, country_index=int(np.flatnonzero(COUNTRY_CODES == live.country)[0]))
    if live.scenario == "new_channel":
        return NewChannel(**common)
    if live.scenario == "betting_wave":
        return BettingWave(**common)
    return LivePeriod(**common)


def simulate_live_chunk(seed: int, chunk_index: int, first_id: int, n: int, live: LiveSpec) -> dict[str, pa.Table]:
    """The five tables of live applicants first_id .. first_id + n - 1, plus their potential outcomes.

    The applications table's `cohort`, `treatment`, `propensity` and `defaulted` are what the old
    policy would have done (the contract needs them); the live outcomes follow the decisions served,
    from `potential_outcomes` (`tala_ray.data.outcomes.release_outcomes`).
    """
    rng = np.random.default_rng([seed, chunk_index, LIVE_STREAM])
    period = live_period(live, np.random.default_rng([seed, chunk_index, LIVE_STREAM, SCENARIO_STREAM]))
    sim = simulate(rng, first_id, n, period)
    return sim.tables | {"potential_outcomes": potential_outcomes_table(sim, period.affected(sim.applicants), rng)}
