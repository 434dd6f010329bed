"""Deciding batches of a book's feature rows exactly as the decision service does.

`BookScorer` is the Ray Data actor of `tala-ray score`: it loads and verifies the pinned champion
models once (`load_predictor`, as every serving replica does) and decides each batch with the
serving graph's own steps (`serving.graph`): credit scores and uplift effects, the policy's
decisions, then the declines' reason codes from the contributions of the credit model that
scored them. Only the input differs from the service: feature columns read from the feature
table instead of computed from a request (the same code computed both).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from tala_ray.features.columns import Columns, take
from tala_ray.models.predictors import CreditPredictor, UpliftPredictor, load_predictor
from tala_ray.policy.decision import PolicyParams
from tala_ray.serving import graph

ROLE = "champion"  # a book is re-scored by the champion alone
KEY_COLUMNS = ("application_id", "applicant_id")
TERMS = ("amount", "term_days")  # the requested amount (local currency) and term the policy lends against

REASON_CODE = pa.struct(
    [
        pa.field("code", pa.string()),
        pa.field("text", pa.string()),
        pa.field("features", pa.list_(pa.string())),
        pa.field("contribution", pa.float64()),
    ]
)
DECISIONS = pa.schema(
    [
        pa.field("application_id", pa.int64()),
        pa.field("applicant_id", pa.int64()),
        pa.field("decision", pa.string()),
        pa.field("limit", pa.float64()),
        pa.field("intervention", pa.string()),
        pa.field("default_probability", pa.float64()),
        pa.field("uplift", pa.float64()),
        pa.field("expected_profit", pa.float64()),
        pa.field("reason_codes", pa.list_(REASON_CODE)),
        pa.field("credit_model_version", pa.string()),
        pa.field("uplift_model_version", pa.string()),
    ]
)
"""One row per application of the book: what the service would answer for it."""


class PinnedModel(BaseModel):
    """One registry model at an exact version, and the feature set it must have been trained on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registry_uri: str
    name: str
    version: str
    feature_set_version: str


class ScoringSetup(BaseModel):
    """What every actor decides with: the pinned models and the service's policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    credit: PinnedModel
    uplift: PinnedModel
    policy: PolicyParams


def load_pinned(model: PinnedModel, kind: str) -> Any:
    """The model's predictor, loaded and verified (checksums, signature, feature set, kind)."""
    return load_predictor(model.registry_uri, model.name, model.version, model.feature_set_version, kind=kind)


def feature_columns(batch: pa.Table, names: list[str]) -> Columns:
    """The named feature columns of a batch as the serving steps take them: numpy arrays, strings as objects."""
    columns = {}
    for name in names:
        column = batch.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(pa.string())
        values = column.to_numpy(zero_copy_only=False)
        text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        columns[name] = values if text else np.asarray(values, dtype=np.float64)
    return columns


def decide_batch(
    credit: CreditPredictor,
    uplift: UpliftPredictor,
    policy: PolicyParams,
    descriptions: dict[str, str],
    batch: pa.Table,
) -> pa.Table:
    """The decisions of a batch of feature-table rows (`DECISIONS`), through the serving graph's steps."""
    features = feature_columns(batch, sorted({*credit.feature_names, *uplift.feature_names}))
    scores = graph.credit_scores(credit, ROLE, features)
    effects = graph.uplift_effects(uplift, features)
    amounts, terms = (np.asarray(batch.column(name).to_numpy(zero_copy_only=False), dtype=np.float64) for name in TERMS)
    decisions = graph.policy_decisions(policy, graph.policy_items(amounts, terms, scores, effects))
    positions = graph.declined(decisions)
    if positions:
        contributions = graph.credit_contributions(credit, take(features, np.asarray(positions)))
        for position, codes in zip(positions, graph.decline_reasons(policy, descriptions, contributions), strict=True):
            decisions[position]["reason_codes"] = codes
    return pa.Table.from_pydict(
        {
            **{name: batch.column(name) for name in KEY_COLUMNS},
            **{name: [d[name] for d in decisions] for name in ("decision", "limit", "intervention")},
            "default_probability": [s["default_probability"] for s in scores],
            "uplift": [e["uplift"] for e in effects],
            "expected_profit": [d["expected_profit"] for d in decisions],
            "reason_codes": [d["reason_codes"] for d in decisions],
            "credit_model_version": [s["version"] for s in scores],
            "uplift_model_version": [e["version"] for e in effects],
        },
        schema=DECISIONS,
    )


class BookScorer:
    """Ray Data actor: the models loaded and verified once, then `decide_batch` per batch."""

    def __init__(self, setup: dict[str, Any]) -> None:
        parsed = ScoringSetup.model_validate(setup)
        self._credit = load_pinned(parsed.credit, "credit")
        self._uplift = load_pinned(parsed.uplift, "uplift")
        self._policy = parsed.policy
        self._descriptions = graph.feature_descriptions()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return decide_batch(self._credit, self._uplift, self._policy, self._descriptions, batch)


def input_columns(setup_credit: CreditPredictor, setup_uplift: UpliftPredictor) -> list[str]:
    """The feature-table columns a batch must carry: keys, terms and every model feature."""
    return [*KEY_COLUMNS, *TERMS, *sorted({*setup_credit.feature_names, *setup_uplift.feature_names} - set(TERMS))]
