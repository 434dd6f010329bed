"""The model graph's steps as plain functions (no Serve): the deployments and the in-process server
both call them, so the two run exactly the same code.

Between steps feature rows travel as numpy columns (`Columns`: feature name -> array), cheap to
pickle across Ray. Reason codes are computed for declines only: explaining a score (TreeSHAP for
the GBM) costs more than scoring it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tala_ray.features.columns import Columns
from tala_ray.policy.decision import PolicyParams, decision_dicts, reason_code_dicts_batch

RawTables = dict[str, Columns]  # the raw tables of a batch, as `features.online.request_columns` gives them


def table_features(tables: RawTables) -> Columns:
    """Feature columns of every application of the raw tables, through the shared feature code."""
    from tala_ray.features.definitions import feature_columns

    return feature_columns(tables["applications"], tables["applicants"], tables["events"], tables["loans"])


def application_terms(tables: RawTables) -> tuple[np.ndarray, np.ndarray]:
    """Requested amount (local currency) and term in days of each application."""
    return tables["applications"]["amount"], tables["applications"]["term_days"]


def credit_scores(predictor: Any, role: str, columns: Columns) -> list[dict[str, Any]]:
    """Default probability, model version and role for each row (predictors read their columns by
    name and refuse a batch that lacks one)."""
    probabilities = np.asarray(predictor.predict_proba(columns), dtype=float)
    version = str(predictor.version)
    return [{"default_probability": float(p), "version": version, "role": role} for p in probabilities]


@dataclass(frozen=True)
class Contributions:
    """Per-feature contributions to the risk score of some rows (the input of reason codes)."""

    features: list[str]
    values: np.ndarray  # rows x features

    def __len__(self) -> int:
        return len(self.values)


def credit_contributions(predictor: Any, columns: Columns) -> Contributions:
    """Per-feature contributions to each row's risk score."""
    frame = predictor.contributions(columns)
    return Contributions([str(name) for name in frame.columns], frame.to_numpy(dtype=np.float64))


def merge_rows(parts: list[tuple[list[int], list[Any]]], size: int) -> list[Any]:
    """Per-row results of groups of rows (positions, results) back in row order."""
    out: list[Any] = [None] * size
    for positions, results in parts:
        for position, result in zip(positions, results, strict=True):
            out[position] = result
    return out


def merge_contributions(parts: list[tuple[list[int], Contributions]], size: int) -> Contributions:
    """Contributions of groups of rows (explained by different credit models) back in row order;
    a feature one model does not use contributes nothing to its rows."""
    features = list(dict.fromkeys(feature for _, part in parts for feature in part.features))
    column = {feature: i for i, feature in enumerate(features)}
    values = np.zeros((size, len(features)))
    for positions, part in parts:
        values[np.ix_(positions, [column[feature] for feature in part.features])] = part.values
    return Contributions(features, values)


def uplift_effects(predictor: Any, columns: Columns) -> list[dict[str, Any]]:
    """The intervention's uplift and model version for each row; a model with several arms gives
    every arm's uplift too (`uplift_by_arm`, `uplift` being the largest)."""
    version = str(predictor.version)
    if len(predictor.arms) == 1:
        effects = np.asarray(predictor.effect(columns), dtype=float).reshape(-1)
        return [{"uplift": float(e), "version": version} for e in effects]
    effects = np.asarray(predictor.arm_effects(columns), dtype=float)
    return [
        {"uplift": max(row), "uplift_by_arm": dict(zip(predictor.arms, row, strict=True)), "version": version}
        for row in effects.tolist()
    ]


def policy_items(
    amounts: np.ndarray, terms: np.ndarray, credit: list[dict[str, Any]], uplift: list[dict[str, Any]]
) -> dict[str, list[Any]]:
    """The policy's inputs, one list per quantity (`uplift`: a number a row, or arm -> uplift with several arms)."""
    return {
        "default_probability": [c["default_probability"] for c in credit],
        "uplift": [u.get("uplift_by_arm", u["uplift"]) for u in uplift],
        "amount": np.asarray(amounts, dtype=float).tolist(),
        "term_days": np.asarray(terms, dtype=float).tolist(),
    }


def policy_decisions(params: PolicyParams, items: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Decision dicts, declines with empty reason codes (`decline_reasons` fills them once the
    credit model has explained the declines)."""
    uplift = items["uplift"]
    if uplift and isinstance(uplift[0], dict):  # several arms: arm -> each row's uplift
        uplift = {arm: [row[arm] for row in uplift] for arm in uplift[0]}
    inputs = (items["default_probability"], uplift, items["amount"], items["term_days"])
    return [fields | {"reason_codes": []} for fields in decision_dicts(*inputs, params)]


def decision_changes(champion: list[dict[str, Any]], challenger: list[dict[str, Any]]) -> list[str]:
    """Per application, what the challenger's decision changes against the champion's: `decision`
    (approve <-> decline), else `intervention` (another arm or none), else `limit`, else `none`."""

    def change(first: dict[str, Any], second: dict[str, Any]) -> str:
        for what in ("decision", "intervention", "limit"):
            if first[what] != second[what]:
                return what
        return "none"

    return [change(first, second) for first, second in zip(champion, challenger, strict=True)]


def declined(decisions: list[dict[str, Any]]) -> list[int]:
    """Positions of the declined applications."""
    return [i for i, decision in enumerate(decisions) if decision["decision"] == "decline"]


def decline_reasons(
    params: PolicyParams, descriptions: dict[str, str], contributions: Contributions
) -> list[list[dict[str, Any]]]:
    """Reason codes (as dicts) of each declined application, from its credit contributions."""
    return reason_code_dicts_batch(contributions.values, contributions.features, descriptions, params.max_reason_codes)


def feature_descriptions() -> dict[str, str]:
    """Feature name -> description (reason codes quote them)."""
    from tala_ray.features.definitions import FEATURES

    return {f.name: f.description for f in FEATURES}
