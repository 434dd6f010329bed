"""An uplift model judged on the test split: figures, segment tables, Qini curves and the Markdown report.

Always (no ground truth needed): the average effect by AIPW with a confidence interval against
the naive difference in means, the DR Qini curve and coefficient, and the effect by segment
(country, risk decile). On the synthetic world (`data.world` given) also against the truth
table: the error of the average effect and whether the interval covers it, PEHE, the Qini
coefficient (true individual effects) as a share of the oracle's, and the value of the policy
"intervene when the effect is worth its cost" against everyone, no one and the oracle.

The policy values each application as the serving policy does (`tala_ray.policy.economics`, in
the application's local currency, the loan amount being `loan_amount_usd` x the country's FX rate);
the report states its economics and gives the values per application converted to USD, so that
applications in different currencies can be averaged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from tala_ray.data.schema import FX_PER_USD
from tala_ray.evaluation.held_out import HeldOutEvaluation
from tala_ray.evaluation.plots import qini_png, segments_png
from tala_ray.evaluation.truth import true_effects
from tala_ray.models import uplift_metrics as um
from tala_ray.models.preprocessing import Preprocessor
from tala_ray.models.training_data import TrainingFrame
from tala_ray.models.uplift_validation import OverlapTrimmed, validation_scores
from tala_ray.policy.economics import Economics, value_of_avoided_default

log = logging.getLogger(__name__)

CURRENCY = "each application's local currency (as the serving policy); policy values converted to USD"


@dataclass
class UpliftEvaluation:
    """Figures (JSON-ready), segment tables and Qini curves of one model on one held-out frame."""

    figures: dict[str, Any]
    segments: dict[str, pd.DataFrame] = field(default_factory=dict)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def value_per_effect(features: pd.DataFrame, economics: Economics) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Per application: what one unit of default probability avoided is worth (local currency, the fee
    forgone plus the loss on the local loan amount) and the USD per local unit; (1.0, 1.0) for data
    without the loan's amount, term and country."""
    if {"loan_amount_usd", "term_days", "country"} <= set(features.columns):
        fx = features["country"].astype(str).map(FX_PER_USD).to_numpy(dtype=np.float64)
        lent = features["loan_amount_usd"].to_numpy(dtype=np.float64) * fx
        return value_of_avoided_default(lent, features["term_days"].to_numpy(dtype=np.float64), economics), 1.0 / fx
    return 1.0, 1.0


def average_effects(frame: TrainingFrame, seed: int, truth: np.ndarray | None = None) -> dict[str, Any]:
    """The average effect over all (trimmed) rows: cross-fitted AIPW with its CI against the naive difference.

    It uses every row, not just the test split: the nuisance models are cross-fitted, so no row's
    own outcome predicts it, and the interval is as narrow as the data allow.
    """
    y = 1.0 - frame.target.astype(np.float64)
    t = frame.treatment.astype(np.int64)
    dense = Preprocessor.fit(frame.features).transform_dense(frame.features).astype(np.float64)
    adjusted = um.mean_with_ci(um.dr_pseudo_outcomes(y, t, um.cross_fitted_nuisance(dense, y, t, seed=seed)))
    naive = um.naive_difference(y, t)
    figures: dict[str, Any] = {"rows": int(len(y)), "adjusted": adjusted.as_dict(), "naive": naive.as_dict()}
    if truth is not None:
        true_ate = float(np.mean(truth))
        figures.update(
            {
                "true_ate": true_ate,
                "adjusted_error": adjusted.estimate - true_ate,
                "adjusted_covers_truth": bool(adjusted.covers(true_ate)),
                "naive_error": naive.estimate - true_ate,
                "adjusted_closer_than_naive": bool(abs(adjusted.estimate - true_ate) < abs(naive.estimate - true_ate)),
            }
        )
    return figures


def evaluate_uplift(
    effect: np.ndarray, frame: TrainingFrame, economics: Economics, seed: int, truth: np.ndarray | None = None
) -> UpliftEvaluation:
    """Every figure of the report for `effect` (the model's predictions) on `frame`."""
    y = 1.0 - frame.target.astype(np.float64)
    t = frame.treatment.astype(np.int64)
    dense = Preprocessor.fit(frame.features).transform_dense(frame.features).astype(np.float64)
    nuisance = um.cross_fitted_nuisance(dense, y, t, seed=seed)
    pseudo = um.dr_pseudo_outcomes(y, t, nuisance)
    adjusted, naive = um.mean_with_ci(pseudo), um.naive_difference(y, t)
    figures: dict[str, Any] = {
        "rows": int(len(y)),
        "treated_share": float(t.mean()),
        "ate_adjusted": adjusted.as_dict(),
        "ate_naive": naive.as_dict(),
        "mean_predicted_effect": float(np.mean(effect)),
        "dr_qini": um.qini_coefficient(effect, pseudo),
        "dr_auuc": um.auuc(effect, pseudo),
    }
    evaluation = UpliftEvaluation(figures=figures)
    evaluation.curves["model (DR pseudo-outcomes)"] = um.qini_curve(effect, pseudo)
    if "country" in frame.features.columns:
        evaluation.segments["country"] = um.segment_effects(
            frame.features["country"].astype(str), pseudo, effect, truth
        )
    risk = 1.0 - nuisance.mu0  # default probability without the intervention
    evaluation.segments["risk decile"] = um.segment_effects(um.deciles(risk), pseudo, effect, truth)
    if truth is not None:
        value, usd_per_local = value_per_effect(frame.features, economics)
        figures.update(_against_truth(effect, truth, adjusted, naive, value, usd_per_local, economics))
        evaluation.curves["model (true effects)"] = um.qini_curve(effect, truth)
        evaluation.curves["oracle (true effects)"] = um.qini_curve(truth, truth)
    return evaluation


def _against_truth(
    effect: np.ndarray,
    truth: np.ndarray,
    adjusted: um.EffectEstimate,
    naive: um.EffectEstimate,
    value: np.ndarray | float,
    usd_per_local: np.ndarray | float,
    economics: Economics,
) -> dict[str, Any]:
    true_ate = float(np.mean(truth))
    oracle_qini = um.qini_coefficient(truth, truth)
    model_qini = um.qini_coefficient(effect, truth)
    return {
        "true_ate": true_ate,
        "ate_adjusted_error": adjusted.estimate - true_ate,
        "ate_adjusted_covers_truth": bool(adjusted.covers(true_ate)),
        "ate_naive_error": naive.estimate - true_ate,
        "adjusted_closer_than_naive": bool(abs(adjusted.estimate - true_ate) < abs(naive.estimate - true_ate)),
        "mean_predicted_effect_error": float(np.mean(effect)) - true_ate,
        "pehe": um.pehe(effect, truth),
        "qini_true": model_qini,
        "qini_oracle": oracle_qini,
        "qini_share_of_oracle": model_qini / oracle_qini if oracle_qini > 0 else float("nan"),
        "policy_value_usd_per_application": um.policy_values(
            effect, truth, value, economics.intervention_cost, usd_per_local
        ),
    }


def evaluate_uplift_model(
    effect: np.ndarray, test: TrainingFrame, trimmed: OverlapTrimmed, economics: Economics, seed: int, cohort: str
) -> HeldOutEvaluation:
    """The refitted model's effects `effect` on the test split, and the average effect over all trimmed rows."""
    world = test.lineage.world
    truth = true_effects(world, test.ids) if world else None
    evaluation = evaluate_uplift(effect, test, economics, seed, truth)
    overall = average_effects(trimmed.frame, seed, true_effects(world, trimmed.frame.ids) if world else None)
    metrics = {
        **validation_scores(effect, test, seed),
        "ate": overall["adjusted"]["estimate"],
        "ate_std_error": overall["adjusted"]["std_error"],
    }
    for key in ("pehe", "qini_share_of_oracle", "ate_adjusted_error"):
        if key in evaluation.figures:
            metrics[key] = float(evaluation.figures[key])
    figures: dict[str, Any] = {
        "cohort": cohort,
        "economics": {**economics.model_dump(), "currency": CURRENCY},
        "average_effect": overall,
        "test": evaluation.figures,
        "overlap": trimmed.overlap.as_dict(),
    }
    if world:
        untrimmed = trimmed.full.take(np.flatnonzero(~trimmed.overlap.keep))
        figures["trimmed_rows_true_ate"] = (
            float(np.mean(true_effects(world, untrimmed.ids))) if len(untrimmed.ids) else None
        )
    if trimmed.full.propensity is not None:
        figures["propensity_recorded_vs_estimated_mae"] = float(
            np.mean(np.abs(trimmed.full.propensity - trimmed.estimated_propensity))
        )
    segments = {k: v.to_dict(orient="records") for k, v in evaluation.segments.items()}
    files = {
        "qini.png": qini_png(evaluation.curves),
        "segments.png": segments_png(evaluation.segments),
        "segments.json": json.dumps(segments, indent=1, default=str).encode(),
    }
    markdown = partial(report_markdown, segments=evaluation.segments)
    return HeldOutEvaluation(metrics=metrics, figures=figures, markdown=markdown, files=files)


def report_markdown(report: dict[str, Any], segments: dict[str, pd.DataFrame]) -> str:
    """A readable summary: average effects, ranking, truth comparison, segments, trials."""
    figures, overall = report["test"], report["average_effect"]
    lines = [
        f"# {report['model']} ({report['family']})",
        "",
        f"Experiment `{report['experiment']}`, cohort "
        f"`{report['cohort']}`. Effects are reductions in default probability.",
        "",
    ]
    lines += [f"## Average effect ({overall['rows']} rows after trimming, cross-fitted)", ""]
    lines += _effect_table(overall["adjusted"], overall["naive"], overall.get("true_ate"))
    if "true_ate" in overall:
        lines.append(
            f"- adjusted CI covers the true average effect: {overall['adjusted_covers_truth']}; "
            f"adjusted closer than naive: {overall['adjusted_closer_than_naive']}"
        )
    lines += ["", f"## The model on the test split ({figures['rows']} rows)", ""]
    lines += _effect_table(figures["ate_adjusted"], figures["ate_naive"], figures.get("true_ate"))
    lines += [f"| model's mean prediction | {figures['mean_predicted_effect']:.4f} | |"]
    lines += ["", f"- DR Qini coefficient: {figures['dr_qini']:.5f}; DR AUUC: {figures['dr_auuc']:.5f}"]
    if "true_ate" in figures:
        policy = figures["policy_value_usd_per_application"]
        lines += [
            f"- PEHE: {figures['pehe']:.4f}",
            f"- Qini with true effects: {figures['qini_true']:.5f} = {figures['qini_share_of_oracle']:.2f} "
            f"of the oracle's ({figures['qini_oracle']:.5f})",
            f"- policy value (USD per application): model {policy['model']:.3f} "
            f"(treats {policy['model_treated_share']:.0%}), everyone {policy['treat_all']:.3f}, no one 0, "
            f"oracle {policy['oracle']:.3f}",
        ]
        if "economics" in report:
            economics = report["economics"]
            lines.append(
                f"- the policy's economics: fee rate {economics['fee_rate_per_30_days']} per 30 days, loss given "
                f"default {economics['loss_given_default']}, intervention cost {economics['intervention_cost']} "
                "in the application's local currency (as the serving policy)"
            )
    overlap = report["overlap"]
    lines += [
        f"- overlap: {overlap['below']} rows below {overlap['low']} and {overlap['above']} above {overlap['high']} "
        f"(estimated propensity) trimmed of {overlap['n']}",
        f"- trials: {report['trials']['finished']} finished, {report['trials']['errored']} failed; "
        f"best hyperparameters `{json.dumps(report['best_params'], sort_keys=True, default=str)}`",
        "",
        "![Qini](qini.png)",
        "",
        "![Segments](segments.png)",
        "",
    ]
    for name, table in segments.items():
        lines += [f"## Effect by {name}", "", *_markdown_table(table), ""]
    return "\n".join(lines)


def _effect_table(adjusted: dict[str, float], naive: dict[str, float], true_ate: float | None) -> list[str]:
    lines = [
        "| average effect | estimate | 95% CI |",
        "| --- | --- | --- |",
        f"| adjusted (AIPW) | {adjusted['estimate']:.4f} | [{adjusted['lower']:.4f}, {adjusted['upper']:.4f}] |",
        f"| naive difference in means | {naive['estimate']:.4f} | [{naive['lower']:.4f}, {naive['upper']:.4f}] |",
    ]
    return lines + ([f"| truth | {true_ate:.4f} | |"] if true_ate is not None else [])


def _markdown_table(table: pd.DataFrame) -> list[str]:
    def cell(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    rows = [" | ".join(cell(v) for v in row) for row in table.itertuples(index=False)]
    return [
        "| " + " | ".join(table.columns) + " |",
        "|" + " --- |" * len(table.columns),
        *(f"| {row} |" for row in rows),
    ]
