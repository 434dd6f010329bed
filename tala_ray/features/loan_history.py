"""Earlier loans as seen at the application time: only loans disbursed before it, and only the
outcomes settled before it (repaid at due_time + days_late, or written off 90 days late)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tala_ray.features.join import join_applications
from tala_ray.features.timeutil import DAY_MS, epoch_ms


def join_loans(loans: pd.DataFrame, apps: pd.DataFrame) -> pd.DataFrame:
    """Loans joined to applications (`_pos`, `_app_ms`, `_fx`), kept only if disbursed strictly before."""
    joined = join_applications(loans[["applicant_id", "disbursed_time", "due_time", "amount", "repaid", "days_late"]], apps)
    disbursed = epoch_ms(joined["disbursed_time"])
    keep = disbursed < joined["_app_ms"].to_numpy()
    return joined.loc[keep].assign(_disbursed_ms=disbursed[keep], _due_ms=epoch_ms(joined.loc[keep, "due_time"]))


def loan_features(loans: pd.DataFrame, n: int) -> dict[str, np.ndarray]:
    """Loan-history aggregates for `n` applications from the joined loans of `join_loans`."""
    pos = loans["_pos"].to_numpy()
    app_ms = loans["_app_ms"].to_numpy()
    due_ms = loans["_due_ms"].to_numpy()
    days_late = loans["days_late"].to_numpy(dtype=np.float64)
    repaid = loans["repaid"].to_numpy(dtype=bool)
    settled = due_ms + days_late * DAY_MS < app_ms
    usd = loans["amount"].to_numpy(dtype=np.float64) / loans["_fx"].to_numpy()

    def count(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        w = None if weights is None else weights[mask]
        return np.bincount(pos[mask], weights=w, minlength=n).astype(np.float64)

    everything = np.ones(len(pos), dtype=bool)
    prior, settled_count = count(everything), count(settled)
    repaid_count = count(settled & repaid)
    latest = np.full(n, -np.inf)
    np.maximum.at(latest, pos, loans["_disbursed_ms"].to_numpy().astype(np.float64))
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
