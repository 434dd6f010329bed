"""The synthetic lending world: one chunk of applicants, simulated with known ground truth.

Pure numpy, deterministic in (seed, chunk_index). Latent traits (occupation, income, discipline,
a betting habit, a hidden shock) drive the true default probability; the raw events and the loan
history reveal them only partly. The intervention's effect on the default logit is heterogeneous:
strong for forgetful traders, mild for casual earners, none for the salaried and harmful for
heavy bettors. Events and loans continue after the application (and carry the outcome), so a
feature that looks past the application time leaks and a point-in-time test can catch it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from tala_ray.data import design as arms_design
from tala_ray.data import schema
from tala_ray.data.design import ONE_ARM, Design

DAY_MS = 86_400_000
APPLICATION_START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
APPLICATION_SPAN_DAYS = 540  # applications until mid-2026
HISTORY_DAYS = 180  # raw events are kept this far back from the application
POST_DAYS = 30  # ...and this far after it (the leakage trap)
MONTH_DAYS = 30.4


@dataclass(frozen=True)
class Country:
    share: float
    base_logit: float


COUNTRY = {
    "KE": Country(0.35, -1.85),
    "PH": Country(0.25, -2.15),
    "MX": Country(0.20, -1.55),
    "IN": Country(0.20, -2.45),
}
COUNTRY_CODES = np.array(list(COUNTRY))
FX_PER_USD = np.array([schema.FX_PER_USD[code] for code in COUNTRY])  # by country index
BASE_LOGIT = np.array([c.base_logit for c in COUNTRY.values()])
OCCUPATIONS = np.array(["salaried", "trader", "casual"])
OCCUPATION_SHARE = [0.35, 0.45, 0.20]
OCCUPATION_INCOME = np.array([1.25, 1.0, 0.6])
OCCUPATION_LOGIT = np.array([-0.35, 0.10, 0.45])
LOAN_TERMS = np.array([14, 30, 60], dtype=np.int32)
EXPERIMENT_SHARE = 0.4
MISSING_AMOUNT_SHARE = 0.02
EVENT_ID_BITS = 20  # event_id = applicant_id << EVENT_ID_BITS | the event's rank among its applicant's events


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _unit_lognormal(rng: np.random.Generator, sigma: float, size: int) -> np.ndarray:
    """Heavy-tailed multipliers with mean 1."""
    return np.exp(rng.normal(-0.5 * sigma**2, sigma, size))


@dataclass
class Applicants:
    """Per-applicant latent and observed state for one chunk."""

    ids: np.ndarray
    country_index: np.ndarray  # into COUNTRY_CODES
    occupation: np.ndarray  # index into OCCUPATIONS
    income_usd: np.ndarray  # monthly
    discipline: np.ndarray
    betting: np.ndarray
    activity: np.ndarray
    app_time: np.ndarray  # ms
    signup_time: np.ndarray  # ms
    window_start: np.ndarray  # ms
    window_end: np.ndarray  # ms
    gap_start: np.ndarray  # ms; gap_len 0 means no gap
    gap_len: np.ndarray  # ms
    device_os: np.ndarray
    device_price_usd: np.ndarray
    device_age_months: np.ndarray


def _draw_applicants(rng: np.random.Generator, first_id: int, n: int, period: Period) -> Applicants:
    country_index = rng.choice(len(COUNTRY), size=n, p=[c.share for c in COUNTRY.values()])
    occupation = rng.choice(3, size=n, p=OCCUPATION_SHARE)
    income_usd = np.exp(rng.normal(np.log(160.0), 0.55, n)) * OCCUPATION_INCOME[occupation]
    app_time = period.start_ms + (rng.random(n) * period.span_days * DAY_MS).astype(np.int64)
    tenure_days = 20 + rng.exponential(380.0, n)
    signup_time = app_time - (tenure_days * DAY_MS).astype(np.int64)
    window_start = np.maximum(signup_time, app_time - HISTORY_DAYS * DAY_MS)
    window_end = app_time + POST_DAYS * DAY_MS
    discipline = rng.normal(0.0, 1.0, n)
    has_gap = rng.random(n) < 0.10 + 0.10 * (discipline < -1.0)
    gap_len = np.where(has_gap, rng.uniform(15, 45, n) * DAY_MS, 0).astype(np.int64)
    gap_start = window_start + (rng.random(n) * (window_end - window_start)).astype(np.int64)
    device_os = rng.choice(np.array(schema.DEVICE_OS), size=n, p=[0.78, 0.07, 0.15])
    price_scale = np.select([device_os == "ios", device_os == "feature_phone"], [4.0, 0.25], 1.0)
    return Applicants(
        ids=first_id + np.arange(n, dtype=np.int64),
        country_index=country_index,
        occupation=occupation,
        income_usd=income_usd,
        discipline=discipline,
        betting=rng.normal(0.0, 1.0, n),
        activity=_unit_lognormal(rng, 0.45, n),
        app_time=app_time,
        signup_time=signup_time,
        window_start=window_start,
        window_end=window_end,
        gap_start=gap_start,
        gap_len=gap_len,
        device_os=device_os,
        device_price_usd=np.round(120 * price_scale * np.sqrt(income_usd / 160) * _unit_lognormal(rng, 0.4, n), 2),
        device_age_months=rng.integers(0, 48, n).astype(np.int32),
    )


@dataclass
class RawEvents:
    """Every event of a chunk as parallel arrays (applicant index, not id), before the leakage trap."""

    idx: np.ndarray
    time: np.ndarray
    kind: np.ndarray
    amount: np.ndarray
    category: np.ndarray


@dataclass
class Behaviour:
    """What an applicant's events show in the 90 days before the application (in USD)."""

    inflow_usd: np.ndarray
    outflow_usd: np.ndarray
    bills: np.ndarray
    betting_installs: np.ndarray


@dataclass
class Outcomes:
    """The application, the old policy's treatment and the truth."""

    loan_usd: np.ndarray
    term_days: np.ndarray
    cohort: np.ndarray
    propensity: np.ndarray
    treatment: np.ndarray
    pd_control: np.ndarray
    pd_treated: np.ndarray
    defaulted: np.ndarray
    structural_logit: np.ndarray
    default_draw: np.ndarray  # the uniform behind `defaulted`: default under option t when below pd_t
    # A design with several arms or days late (`tala_ray.data.design`): every option's PD (none, then
    # the arms, by treatment code) and days late (observed, and expected under every option).
    pd_by_option: dict[str, np.ndarray] = field(default_factory=dict)
    days_late: np.ndarray | None = None
    expected_days_late: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Period:
    """When a chunk's applications happen and how the world differs then. This base is the training
    period, as drawn; a live scenario (`tala_ray.data.scenarios`) overrides the hooks."""

    start_ms: int = APPLICATION_START_MS
    span_days: int = APPLICATION_SPAN_DAYS

    def applicants(self, a: Applicants) -> Applicants:
        """The applicants as the period brings them."""
        return a

    def events(self, a: Applicants, ev: RawEvents) -> RawEvents:  # noqa: ARG002
        """The raw events as the period changes them."""
        return ev

    def shock(self, a: Applicants, b: Behaviour, tau: np.ndarray) -> tuple[np.ndarray | float, np.ndarray]:  # noqa: ARG002
        """A shift of this application's default logit (not in the earlier loans) and the
        intervention's effect on the logit, as the period changes them."""
        return 0.0, tau


TRAINING = Period()


def _times_uniform(rng: np.random.Generator, start: np.ndarray, end: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return start[idx] + (rng.random(len(idx)) * (end[idx] - start[idx])).astype(np.int64)


def _times_periodic(
    rng: np.random.Generator, a: Applicants, jitter_days: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """A monthly rhythm (pay days, bills): applicant index and time of each occurrence in the window."""
    n = len(a.ids)
    months = int(np.ceil((HISTORY_DAYS + POST_DAYS) / MONTH_DAYS)) + 1
    phase = rng.random(n) * MONTH_DAYS
    k = np.arange(months)
    days = phase[:, None] + MONTH_DAYS * k[None, :]
    jitter = rng.normal(0.0, 1.0, (n, months)) * np.asarray(jitter_days).reshape(-1, 1)
    t = a.window_start[:, None] + ((days + jitter) * DAY_MS).astype(np.int64)
    keep = (t >= a.window_start[:, None]) & (t < a.window_end[:, None])
    idx = np.broadcast_to(np.arange(n)[:, None], t.shape)[keep]
    return idx, t[keep]


def _poisson_events(rng: np.random.Generator, a: Applicants, per_month: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    months = (a.window_end - a.window_start) / (MONTH_DAYS * DAY_MS)
    counts = rng.poisson(per_month * months)
    idx = np.repeat(np.arange(len(a.ids)), counts)
    return idx, _times_uniform(rng, a.window_start, a.window_end, idx)


def _draw_raw_events(rng: np.random.Generator, a: Applicants) -> RawEvents:
    income_local = a.income_usd * FX_PER_USD[a.country_index]
    occ = a.occupation
    parts: list[tuple[np.ndarray, np.ndarray, str, np.ndarray]] = []

    # Inflows: salary on a pay day for the salaried, irregular takings for traders and casual earners.
    pay_idx, pay_t = _times_periodic(rng, a, 1.0)
    pay_mask = occ[pay_idx] == 0
    pay_idx, pay_t = pay_idx[pay_mask], pay_t[pay_mask]
    parts.append((pay_idx, pay_t, "mm_in", income_local[pay_idx] * rng.normal(1.0, 0.03, len(pay_idx))))
    in_rate = np.select([occ == 1, occ == 2], [6.0, 3.0], 1.5) * a.activity
    in_share = np.select([occ == 1, occ == 2], [1.0, 1.0], 0.15)
    idx, t = _poisson_events(rng, a, in_rate)
    amount = income_local[idx] * in_share[idx] / in_rate[idx] * _unit_lognormal(rng, 0.9, len(idx))
    parts.append((idx, t, "mm_in", amount))

    # Outflows: spending relative to income reveals discipline and the betting habit.
    spend_ratio = np.clip(0.92 - 0.15 * a.discipline + 0.06 * a.betting + rng.normal(0, 0.05, len(a.ids)), 0.4, 1.6)
    out_rate = 5.0 * a.activity
    idx, t = _poisson_events(rng, a, out_rate)
    amount = income_local[idx] * spend_ratio[idx] / out_rate[idx] * _unit_lognormal(rng, 0.9, len(idx))
    parts.append((idx, t, "mm_out", amount))

    # Airtime top-ups: small, frequent; bettors top up more.
    air_rate = 2.5 * a.activity
    idx, t = _poisson_events(rng, a, air_rate)
    amount = income_local[idx] * 0.03 * (1 + 0.25 * np.maximum(a.betting[idx], -2)) / air_rate[idx]
    parts.append((idx, t, "airtime", np.abs(amount) * _unit_lognormal(rng, 0.5, len(idx))))

    # Bills: monthly; the disciplined pay nearly every month and on time.
    jitter = np.clip(3.0 - 1.5 * a.discipline, 0.5, 8.0)
    idx, t = _times_periodic(rng, a, jitter)
    paid = rng.random(len(idx)) < _sigmoid(0.6 + 1.3 * a.discipline[idx])
    idx, t = idx[paid], t[paid]
    parts.append((idx, t, "bill_pay", income_local[idx] * 0.08 * _unit_lognormal(rng, 0.2, len(idx))))

    # App installs: bettors install betting apps.
    idx, t = _poisson_events(rng, a, np.full(len(a.ids), 0.8))
    p_bet = _sigmoid(-2.4 + 1.8 * a.betting[idx])
    rest = rng.choice(
        np.array(["finance", "social", "productivity", "gaming"]), size=len(idx), p=[0.3, 0.35, 0.15, 0.2]
    )
    category = np.where(rng.random(len(idx)) < p_bet, "betting", rest)

    ev = RawEvents(
        idx=np.concatenate([p[0] for p in parts] + [idx]),
        time=np.concatenate([p[1] for p in parts] + [t]),
        kind=np.concatenate([np.full(len(p[0]), p[2]) for p in parts] + [np.full(len(idx), "app_install")]),
        amount=np.round(np.concatenate([p[3] for p in parts] + [np.full(len(idx), np.nan)]), 2),
        category=np.concatenate([np.full(len(p[0]), None, dtype=object) for p in parts] + [category.astype(object)]),
    )
    ev.amount[rng.random(len(ev.amount)) < MISSING_AMOUNT_SHARE] = np.nan
    in_gap = (ev.time >= a.gap_start[ev.idx]) & (ev.time < a.gap_start[ev.idx] + a.gap_len[ev.idx])
    return _subset(ev, ~in_gap)


def _subset(ev: RawEvents, keep: np.ndarray) -> RawEvents:
    return RawEvents(ev.idx[keep], ev.time[keep], ev.kind[keep], ev.amount[keep], ev.category[keep])


def _behaviour(a: Applicants, ev: RawEvents) -> Behaviour:
    """Summaries of the 90 days before the application: the observable drivers of risk."""
    n = len(a.ids)
    before = ev.time < a.app_time[ev.idx]
    recent = before & (ev.time >= a.app_time[ev.idx] - 90 * DAY_MS)
    usd = np.nan_to_num(ev.amount) / FX_PER_USD[a.country_index[ev.idx]]

    def total(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(ev.idx[mask], weights=None if weights is None else weights[mask], minlength=n)

    return Behaviour(
        inflow_usd=total(recent & (ev.kind == "mm_in"), usd),
        outflow_usd=total(recent & (ev.kind == "mm_out"), usd),
        bills=total(recent & (ev.kind == "bill_pay")),
        betting_installs=total(before & (ev.category == "betting")),
    )


def _treatment_effect_logit(a: Applicants, b: Behaviour, rng: np.random.Generator) -> np.ndarray:
    """The intervention's effect on the default logit: negative helps repayment."""
    forgetful = b.bills <= 1
    by_occupation = np.select(
        [a.occupation == 1, a.occupation == 2],
        [-0.55 - 0.45 * forgetful, -0.25],
        rng.normal(0.0, 0.03, len(a.ids)),
    )
    heavy_bettor = b.betting_installs >= 2
    return np.where(heavy_bettor, 0.65, by_occupation)


def _draw_outcomes(
    rng: np.random.Generator, a: Applicants, b: Behaviour, period: Period, design: Design = ONE_ARM
) -> Outcomes:
    n = len(a.ids)
    loan_usd = np.clip(np.round(a.income_usd * np.exp(rng.normal(-1.2, 0.45, n)) / 5) * 5, 5, 400)
    term_days = rng.choice(LOAN_TERMS, size=n, p=[0.3, 0.5, 0.2])
    tenure_days = (a.app_time - a.signup_time) / DAY_MS
    monthly_inflow = b.inflow_usd / 3
    known_logit = (
        BASE_LOGIT[a.country_index]
        + 2.2 * np.log((b.outflow_usd + 20) / (b.inflow_usd + 20))
        + 0.45 * np.minimum(b.betting_installs, 4)
        - 0.30 * b.bills
        + 0.55 * np.log((loan_usd + 5) / (monthly_inflow + 5))
        + OCCUPATION_LOGIT[a.occupation]
        + 0.30 * (a.device_os == "feature_phone")
        - 0.20 * np.log1p(tenure_days / 180)
        + 0.15 * (term_days == 60)
        - 0.35 * a.discipline
        + 0.9
    )
    structural_logit = known_logit + rng.normal(0.0, 0.25, n)
    shift, tau = period.shock(a, b, _treatment_effect_logit(a, b, rng))
    pd_control = _sigmoid(structural_logit + shift)
    pd_treated = _sigmoid(structural_logit + shift + tau)
    cohort = np.where(rng.random(n) < EXPERIMENT_SHARE, "experiment", "historical")
    old_policy = np.clip(_sigmoid(1.4 * (known_logit + 1.9)), 0.05, 0.95)
    # The design's arms, by treatment code (one arm: the intervention; any arm: the same two draws).
    effect = {
        arms_design.INTERVENTION: tau,
        arms_design.REMINDER: arms_design.reminder_effect_logit(a.occupation, b.bills, b.betting_installs),
    }
    pd_by_option = {schema.NO_INTERVENTION: pd_control}
    pd_by_option |= {arm: _sigmoid(structural_logit + shift + effect[arm]) for arm in design.arms}
    propensity = np.where(cohort == "experiment", len(design.arms) / len(design.options), old_policy)  # any arm
    treatment = arms_design.assign_arms(rng.random(n), propensity, len(design.arms))
    default_draw = rng.random(n)
    received = np.column_stack(list(pd_by_option.values()))[np.arange(n), treatment]
    defaulted = (default_draw < received).astype(np.int8)
    outcomes = Outcomes(
        loan_usd,
        term_days,
        cohort,
        propensity,
        treatment,
        pd_control,
        pd_treated,
        defaulted,
        structural_logit,
        default_draw,
        pd_by_option,
    )
    if design.days_late:
        mean = arms_design.mean_days_late(a.occupation, b.bills, b.betting_installs)
        means = {
            option: mean * arms_design.days_late_factor(option, a.occupation, b.bills, b.betting_installs)
            for option in design.options
        }
        outcomes.expected_days_late = {o: arms_design.expected_days_late(pd_by_option[o], means[o]) for o in means}
        by_option = [arms_design.days_late(default_draw, pd_by_option[o], means[o]) for o in design.options]
        outcomes.days_late = np.column_stack(by_option)[np.arange(n), treatment]
    return outcomes


def _event_ids(applicant_ids: np.ndarray) -> np.ndarray:
    """Unique, deterministic ids of events grouped by applicant, increasing in table order."""
    n = len(applicant_ids)
    starts = np.flatnonzero(np.r_[True, applicant_ids[1:] != applicant_ids[:-1]]) if n else np.zeros(0, np.int64)
    rank = np.arange(n, dtype=np.int64) - np.repeat(starts, np.diff(np.r_[starts, n]))
    if n and int(rank.max()) >= 1 << EVENT_ID_BITS:
        raise ValueError(f"an applicant has more than {1 << EVENT_ID_BITS} events: event ids would collide")
    return (applicant_ids.astype(np.int64) << EVENT_ID_BITS) | rank


def _events_table(rng: np.random.Generator, a: Applicants, ev: RawEvents, o: Outcomes) -> pa.Table:
    """The events table; after the application a borrower headed for default goes quiet on inflows."""
    after = ev.time >= a.app_time[ev.idx]
    quiet = after & (o.defaulted[ev.idx] == 1) & (ev.kind == "mm_in") & (rng.random(len(ev.idx)) < 0.6)
    ev = _subset(ev, ~quiet)
    order = np.lexsort((ev.time, ev.idx))
    applicant_ids = a.ids[ev.idx[order]]
    return pa.table(
        {
            "event_id": _event_ids(applicant_ids),
            "applicant_id": applicant_ids,
            "event_time": pa.array(ev.time[order], pa.int64()).cast(schema.TS),
            "event_type": ev.kind[order],
            "amount": pa.array(ev.amount[order], pa.float64(), from_pandas=True),
            "app_category": pa.array(ev.category[order], pa.string()),
        },
        schema=schema.EVENTS,
    )


def _draw_loans(rng: np.random.Generator, a: Applicants, o: Outcomes) -> pa.Table:
    """Earlier loans (their outcomes reveal the hidden risk) and a few later ones (leakage trap)."""
    tenure_days = (a.app_time - a.signup_time) / DAY_MS
    prior_counts = np.where(tenure_days > 45, np.minimum(rng.poisson(tenure_days / 150), 10), 0)
    idx = np.repeat(np.arange(len(a.ids)), prior_counts)
    latest = a.app_time[idx] - 7 * DAY_MS
    disbursed = a.signup_time[idx] + (rng.random(len(idx)) * (latest - a.signup_time[idx])).astype(np.int64)
    p_hist = _sigmoid(o.structural_logit[idx] - 0.2)
    repaid = rng.random(len(idx)) >= p_hist

    later_counts = rng.poisson(0.3, len(a.ids))
    later_idx = np.repeat(np.arange(len(a.ids)), later_counts)
    later_disbursed = a.app_time[later_idx] + (rng.uniform(1, 60, len(later_idx)) * DAY_MS).astype(np.int64)
    later_repaid = o.defaulted[later_idx] == 0

    idx = np.concatenate([idx, later_idx])
    disbursed = np.concatenate([disbursed, later_disbursed])
    repaid = np.concatenate([repaid, later_repaid])
    term = rng.choice(LOAN_TERMS, size=len(idx), p=[0.3, 0.5, 0.2])
    late = np.where(repaid, rng.poisson(1.0 + 4.0 * _sigmoid(-a.discipline[idx])) * (rng.random(len(idx)) < 0.4), 90)
    amount = (
        np.clip(np.round(a.income_usd[idx] * np.exp(rng.normal(-1.4, 0.4, len(idx))) / 5) * 5, 5, 400)
        * FX_PER_USD[a.country_index[idx]]
    )
    order = np.lexsort((disbursed, idx))
    first_loan_id = int(a.ids[0]) * 16 if len(a.ids) else 0
    return pa.table(
        {
            "loan_id": first_loan_id + np.arange(len(idx), dtype=np.int64),
            "applicant_id": a.ids[idx[order]],
            "disbursed_time": pa.array(disbursed[order], pa.int64()).cast(schema.TS),
            "due_time": pa.array((disbursed + term.astype(np.int64) * DAY_MS)[order], pa.int64()).cast(schema.TS),
            "amount": amount[order],
            "repaid": repaid[order],
            "days_late": late[order].astype(np.int32),
        },
        schema=schema.LOANS,
    )


@dataclass
class Simulation:
    """A simulated chunk: its applicants' latent state, the outcomes' truth and the five tables."""

    applicants: Applicants
    outcomes: Outcomes
    tables: dict[str, pa.Table]


def simulate_chunk(seed: int, chunk_index: int, first_id: int, n: int, design: Design = ONE_ARM) -> dict[str, pa.Table]:
    """All five tables for applicants first_id .. first_id + n - 1 (the training period) of an experiment
    with the `design`'s arms and outcomes."""
    return simulate(np.random.default_rng([seed, chunk_index]), first_id, n, TRAINING, design).tables


def simulate(rng: np.random.Generator, first_id: int, n: int, period: Period, design: Design = ONE_ARM) -> Simulation:
    """Applicants first_id .. first_id + n - 1 applying during `period`, drawn from `rng`."""
    a = period.applicants(_draw_applicants(rng, first_id, n, period))
    raw_events = period.events(a, _draw_raw_events(rng, a))
    o = _draw_outcomes(rng, a, _behaviour(a, raw_events), period, design)
    application_ids = 1_000_000_000 + a.ids
    ts = lambda ms: pa.array(ms, pa.int64()).cast(schema.TS)  # noqa: E731
    tables = {
        "applicants": pa.table(
            {
                "applicant_id": a.ids,
                "country": COUNTRY_CODES[a.country_index],
                "signup_time": ts(a.signup_time),
                "device_os": a.device_os,
                "device_price_usd": a.device_price_usd,
                "device_age_months": a.device_age_months,
            },
            schema=schema.APPLICANTS,
        ),
        "events": _events_table(rng, a, raw_events, o),
        "loans": _draw_loans(rng, a, o),
        "applications": pa.table(
            {
                "application_id": application_ids,
                "applicant_id": a.ids,
                "application_time": ts(a.app_time),
                "amount": np.round(o.loan_usd * FX_PER_USD[a.country_index], 2),
                "term_days": o.term_days,
                "cohort": o.cohort,
                "treatment": o.treatment,
                "propensity": np.round(o.propensity, 6),
                "defaulted": o.defaulted,
            },
            schema=schema.APPLICATIONS,
        ),
        "truth": pa.table(
            {
                "application_id": application_ids,
                "pd_control": o.pd_control,
                "pd_treated": o.pd_treated,
                "true_uplift": o.pd_control - o.pd_treated,
                "occupation": OCCUPATIONS[a.occupation],
            },
            schema=schema.TRUTH,
        ),
    }
    if not design.is_one_arm:
        tables["applications"], tables["truth"] = _with_design_columns(tables["applications"], tables["truth"], o)
    return Simulation(a, o, tables)


def _with_design_columns(applications: pa.Table, truth: pa.Table, o: Outcomes) -> tuple[pa.Table, pa.Table]:
    """A design's outcome and truth columns: days late (`schema.APPLICATION_OUTCOMES`), each further arm's
    PD and every option's expected days late (`schema.truth_pd_column`, `truth_expected_column`)."""
    if o.days_late is not None:
        applications = applications.append_column(schema.APPLICATION_OUTCOMES.field("days_late"), pa.array(o.days_late))
    for option, pd_option in o.pd_by_option.items():
        if schema.truth_pd_column(option) not in truth.column_names:
            truth = truth.append_column(
                pa.field(schema.truth_pd_column(option), pa.float64(), False), pa.array(pd_option)
            )
    for option, expected in o.expected_days_late.items():
        column = schema.truth_expected_column(arms_design.DAYS_LATE, option)
        truth = truth.append_column(pa.field(column, pa.float64(), False), pa.array(expected))
    return applications, truth
