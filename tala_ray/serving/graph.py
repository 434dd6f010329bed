"""The model graph's steps as plain functions (no Serve): the deployments and the in-process server
both call them, so the two run exactly the same code."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tala_ray.policy import PolicyParams, decide, reason_codes

FeatureRow = dict[str, Any]
ID_COLUMNS = ("application_id",)


def feature_frame(rows: list[FeatureRow], feature_names: list[str]) -> pd.DataFrame:
    """The rows as a frame with exactly the model's features, in its order."""
    return pd.DataFrame.from_records(rows).reindex(columns=list(feature_names))


def feature_rows(requests: list[Any]) -> list[FeatureRow]:
    """One feature row per application request, through the shared feature code."""
    from tala_ray.features.online import online_feature_columns

    columns = online_feature_columns(list(requests))
    names = list(columns)
    values = [column.tolist() for column in columns.values()]
    return [dict(zip(names, row)) for row in zip(*values)]


def credit_scores(predictor: Any, role: str, rows: list[FeatureRow]) -> list[dict[str, Any]]:
    """Default probability, per-feature contributions, model version and role for each row."""
    frame = feature_frame(rows, predictor.feature_names)
    probabilities = np.asarray(predictor.predict_proba(frame), dtype=float)
    contributions = predictor.contributions(frame)
    names = [str(name) for name in contributions.columns]
    by_row = contributions.to_numpy(dtype=np.float64).tolist()
    return [
        {
            "default_probability": float(p),
            "contributions": dict(zip(names, values, strict=True)),
            "version": str(predictor.version),
            "role": role,
        }
        for p, values in zip(probabilities, by_row, strict=True)
    ]


def uplift_effects(predictor: Any, rows: list[FeatureRow]) -> list[dict[str, Any]]:
    """The intervention's uplift and model version for each row."""
    names = getattr(predictor, "feature_names", None) or [k for k in rows[0] if k not in ID_COLUMNS]
    effects = np.asarray(predictor.effect(feature_frame(rows, names)), dtype=float).reshape(-1)
    return [{"uplift": float(e), "version": str(predictor.version)} for e in effects]


def policy_decisions(params: PolicyParams, descriptions: dict[str, str], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """items: default_probability, uplift, amount, term_days, contributions -> decision dicts."""
    columns = {k: np.array([item[k] for item in items], dtype=float) for k in ("default_probability", "uplift")}
    amounts = np.array([item["amount"] for item in items], dtype=float)
    terms = np.array([item["term_days"] for item in items], dtype=float)
    decisions = decide(columns["default_probability"], columns["uplift"], amounts, terms, params)
    out = []
    for item, decision in zip(items, decisions, strict=True):
        reasons = []
        if decision.decision == "decline":
            reasons = reason_codes(item["contributions"], descriptions, params.max_reason_codes)
        out.append({**decision.model_dump(), "reason_codes": [r.model_dump() for r in reasons]})
    return out


def feature_descriptions() -> dict[str, str]:
    """Feature name -> description (reason codes quote them)."""
    from tala_ray.features.definitions import FEATURES

    return {f.name: f.description for f in FEATURES}
