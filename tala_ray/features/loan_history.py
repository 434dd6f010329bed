"""Earlier loans as seen at the application time: only loans disbursed before it, and only the
outcomes settled before it (repaid at due_time + days_late, or written off 90 days late)."""

from __future__ import annotations

import numpy as np

from tala_ray.features.columns import Columns, take
from tala_ray.features.join import join_applications
from tala_ray.features.timeutil import DAY_MS


def join_loans(loans: Columns, apps: Columns) -> Columns:
    """Loans joined to applications (`_pos`, `_app_ms`, `_fx`), kept only if disbursed strictly before."""
    fields = ("applicant_id", "disbursed_time", "due_time", "amount", "repaid", "days_late")
    joined = join_applications({name: loans[name] for name in fields}, apps)
    return take(joined, joined["disbursed_time"] < joined["_app_ms"])


def loan_features(loans: Columns, n: int) -> dict[str, np.ndarray]:
    """Loan-history aggregates for `n` applications from the joined loans of `join_loans`."""
    pos = loans["_pos"]
    app_ms = loans["_app_ms"]
    due_ms = loans["due_time"]
    days_late = loans["days_late"].astype(np.float64)
    repaid = loans["repaid"].astype(bool)
    settled = due_ms + days_late * DAY_MS < app_ms
    usd = loans["amount"].astype(np.float64) / loans["_fx"]

    def count(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        w = None if weights is None else weights[mask]
        return np.bincount(pos[mask], weights=w, minlength=n).astype(np.float64)

    everything = np.ones(len(pos), dtype=bool)
    prior, settled_count = count(everything), count(settled)
    repaid_count = count(settled & repaid)
    latest = np.full(n, -np.inf)
    np.maximum.at(latest, pos, loans["disbursed_time"].astype(np.float64))
    app_by_pos = np.full(n, np.nan)
    app_by_pos[pos] = app_ms
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "prior_loan_count": prior,
            "repaid_loan_count": repaid_count,
            "defaulted_loan_count": count(settled & ~repaid),
            "share_loans_repaid": np.where(settled_count > 0, repaid_count / settled_count, np.nan),
            "mean_days_late_repaid": np.where(
                repaid_count > 0, count(settled & repaid, days_late) / repaid_count, np.nan
            ),
            "overdue_loan_count": count(~settled & (due_ms < app_ms)),
            "open_loan_count": count(~settled & (due_ms >= app_ms)),
            "days_since_last_loan": np.where(prior > 0, (app_by_pos - latest) / DAY_MS, np.nan),
            "prior_loan_mean_usd": np.where(prior > 0, count(everything, usd) / prior, np.nan),
        }
