"""The model graph's steps as plain functions (no Serve): the deployments and the in-process server
both call them, so the two run exactly the same code.

Between steps feature rows travel as numpy columns (`Columns`: feature name -> array), cheap to
pickle across Ray; a single decision as one-row columns. Reason codes are computed for declines only:
explaining a score (TreeSHAP for the GBM) costs more than scoring it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tala_ray.features.columns import Columns
from tala_ray.policy import PolicyParams, decision_dicts, reason_code_dicts_batch

RawTables = dict[str, Columns]  # the raw tables of a batch, as `features.online.request_columns` gives them


def table_features(tables: RawTables) -> Columns:
    """Feature columns of every application of the raw tables, through the shared feature code."""
    from tala_ray.features.definitions import feature_columns

    return feature_columns(tables["applications"], tables["applicants"], tables["events"], tables["loans"])


def application_terms(tables: RawTables) -> tuple[np.ndarray, np.ndarray]:
    """Requested amount (local currency) and term in days of each application."""
    return tables["applications"]["amount"], tables["applications"]["term_days"]


def split_rows(columns: Columns) -> list[Columns]:
    """Each row as its own one-row columns (how a single decision travels through a step's
    `@serve.batch` method: no conversion to and from Python values)."""
    n = row_count(columns)
    if n == 1:
        return [columns]
    return [{name: values[i : i + 1] for name, values in columns.items()} for i in range(n)]


def concat_rows(parts: list[Columns]) -> Columns:
    """The rows of several columns with the same names, in order, as one set of columns."""
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def row_count(columns: Columns) -> int:
    return len(next(iter(columns.values())))


def model_columns(columns: Columns, names: list[str]) -> Columns:
    """Exactly the model's features, in its order (predictors read numpy columns by name)."""
    missing = [name for name in names if name not in columns]
    if missing:
        from tala_ray.errors import UserError

        raise UserError(f"features: the model needs columns {missing} that the feature step does not produce")
    return {name: columns[name] for name in names}


def credit_scores(predictor: Any, role: str, columns: Columns, explain: bool = False) -> list[dict[str, Any]]:
    """Default probability, model version and role for each row; with `explain`, also its
    `contributions` (one call instead of a second round trip for a single decision)."""
    frame = model_columns(columns, predictor.feature_names)
    version = str(predictor.version)
    if not explain:
        probabilities = np.asarray(predictor.predict_proba(frame), dtype=float)
        return [{"default_probability": float(p), "version": version, "role": role} for p in probabilities]
    probabilities, contributions = predictor.score(frame)  # one preprocessing pass for both
    return [
        {"default_probability": float(p), "version": version, "role": role, "contributions": c}
        for p, c in zip(np.asarray(probabilities, dtype=float), _contribution_dicts(contributions), strict=True)
    ]


def credit_contributions(predictor: Any, columns: Columns) -> list[dict[str, float]]:
    """Per-feature contributions to each row's risk score (the input of reason codes)."""
    return _contribution_dicts(predictor.contributions(model_columns(columns, predictor.feature_names)))


def _contribution_dicts(contributions: pd.DataFrame) -> list[dict[str, float]]:
    names = [str(name) for name in contributions.columns]
    return [dict(zip(names, values, strict=True)) for values in contributions.to_numpy(dtype=np.float64).tolist()]


def uplift_effects(predictor: Any, columns: Columns) -> list[dict[str, Any]]:
    """The intervention's uplift and model version for each row."""
    names = list(predictor.feature_names)
    effects = np.asarray(predictor.effect(model_columns(columns, names)), dtype=float).reshape(-1)
    version = str(predictor.version)
    return [{"uplift": float(e), "version": version} for e in effects]


def policy_items(
    amounts: np.ndarray, terms: np.ndarray, credit: list[dict[str, Any]], uplift: list[dict[str, Any]]
) -> dict[str, list[Any]]:
    """The policy's inputs, one list per quantity (plus `contributions` when the credit step explained)."""
    items: dict[str, list[Any]] = {
        "default_probability": [c["default_probability"] for c in credit],
        "uplift": [u["uplift"] for u in uplift],
        "amount": np.asarray(amounts, dtype=float).tolist(),
        "term_days": np.asarray(terms, dtype=float).tolist(),
    }
    if all("contributions" in c for c in credit):
        items["contributions"] = [c["contributions"] for c in credit]
    return items


def policy_decisions(params: PolicyParams, descriptions: dict[str, str], items: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Decision dicts; declines get reason codes when `items` has contributions, else empty ones
    (`decline_reasons` fills them after the credit model explained the declines)."""
    arrays = [np.asarray(items[k], dtype=float) for k in ("default_probability", "uplift", "amount", "term_days")]
    decisions = [fields | {"reason_codes": []} for fields in decision_dicts(*arrays, params)]
    positions = declined(decisions)
    if positions and "contributions" in items:
        contributions = [items["contributions"][i] for i in positions]
        for position, reasons in zip(positions, decline_reasons(params, descriptions, contributions), strict=True):
            decisions[position]["reason_codes"] = reasons
    return decisions


def unexplained_declines(decisions: list[dict[str, Any]], items: dict[str, list[Any]]) -> list[int]:
    """Positions of declines still without reason codes (their contributions were not sent)."""
    return [] if "contributions" in items else declined(decisions)


def declined(decisions: list[dict[str, Any]]) -> list[int]:
    """Positions of the declined applications."""
    return [i for i, decision in enumerate(decisions) if decision["decision"] == "decline"]


def decline_reasons(
    params: PolicyParams, descriptions: dict[str, str], contributions: list[dict[str, float]]
) -> list[list[dict[str, Any]]]:
    """Reason codes (as dicts) of each declined application, from its credit contributions."""
    if not contributions:
        return []
    names = list(contributions[0])
    matrix = np.array([[row[name] for name in names] for row in contributions], dtype=np.float64)
    return reason_code_dicts_batch(matrix, names, descriptions, params.max_reason_codes)


def feature_descriptions() -> dict[str, str]:
    """Feature name -> description (reason codes quote them)."""
    from tala_ray.features.definitions import FEATURES

    return {f.name: f.description for f in FEATURES}
