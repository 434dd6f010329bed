"""An uplift model's evaluation on the test split, its plots (PNG), report, and registration.

Always (no ground truth needed): the average effect by AIPW with a confidence interval against
the naive difference in means, the DR Qini curve and coefficient, and the effect by segment
(country, risk decile). On the synthetic world (`data.world` given) also against the truth
table: the error of the average effect and whether the interval covers it, PEHE, the Qini
coefficient (true individual effects) as a share of the oracle's, and the value of the policy
"intervene when the effect is worth its cost" against everyone, no one and the oracle.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tala_ray.models import uplift_metrics as um

if TYPE_CHECKING:
    from tala_ray.core.registry import ArtifactManifest
    from tala_ray.models.training_data import Splits, TrainingFrame
    from tala_ray.tuning.runner import TrialCounts
    from tala_ray.tuning.spec import ExperimentSpec
    from tala_ray.tuning.uplift_families import EconomicsSpec, UpliftFamilyBuilder

log = logging.getLogger(__name__)


@dataclass
class UpliftEvaluation:
    """Figures (JSON-ready), segment tables and Qini curves of one model on one held-out frame."""

    figures: dict[str, Any]
    segments: dict[str, pd.DataFrame] = field(default_factory=dict)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def true_effects(world: str, ids: np.ndarray) -> np.ndarray:
    """Evaluation only: `true_uplift` (pd_control - pd_treated) of each application from the truth table."""
    import pyarrow.dataset as pads

    from tala_ray.core.errors import UserError
    from tala_ray.core.storage import join_path, resolve_filesystem

    filesystem, root = resolve_filesystem(world)
    truth = (
        pads.dataset(join_path(root, "truth"), filesystem=filesystem, format="parquet")
        .to_table(columns=["application_id", "true_uplift"])
        .to_pandas()
        .set_index("application_id")["true_uplift"]
        .reindex(ids)
    )
    if truth.isna().any():
        raise UserError(
            f"data.world: {world!r} has no truth for some applications; is it the world the features came from?"
        )
    return truth.to_numpy(dtype=np.float64)


def value_per_effect(features: pd.DataFrame, economics: EconomicsSpec) -> np.ndarray | float:
    """USD saved per unit of default probability avoided: (fee x term / 30 + loss given default) x amount."""
    if {"loan_amount_usd", "term_days"} <= set(features.columns):
        fee = economics.fee_rate_per_30_days * features["term_days"].to_numpy(dtype=np.float64) / 30
        return (fee + economics.loss_given_default) * features["loan_amount_usd"].to_numpy(dtype=np.float64)
    return 1.0


def average_effects(frame: TrainingFrame, seed: int, truth: np.ndarray | None = None) -> dict[str, Any]:
    """The average effect over all (trimmed) rows: cross-fitted AIPW with its CI against the naive difference.

    It uses every row, not just the test split: the nuisance models are cross-fitted, so no row's
    own outcome predicts it, and the interval is as narrow as the data allow.
    """
    from tala_ray.models.preprocessing import Preprocessor

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
    effect: np.ndarray, frame: TrainingFrame, economics: EconomicsSpec, seed: int, truth: np.ndarray | None = None
) -> UpliftEvaluation:
    """Every figure of the report for `effect` (the model's predictions) on `frame`."""
    from tala_ray.models.preprocessing import Preprocessor

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
        figures.update(
            _against_truth(effect, truth, adjusted, naive, value_per_effect(frame.features, economics), economics)
        )
        evaluation.curves["model (true effects)"] = um.qini_curve(effect, truth)
        evaluation.curves["oracle (true effects)"] = um.qini_curve(truth, truth)
    return evaluation


def _against_truth(
    effect: np.ndarray,
    truth: np.ndarray,
    adjusted: um.EffectEstimate,
    naive: um.EffectEstimate,
    value: np.ndarray | float,
    economics: EconomicsSpec,
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
        "policy_value_usd_per_application": um.policy_values(effect, truth, value, economics.intervention_cost_usd),
    }


# Plots.
def _figure(width: float = 6, height: float = 4.5) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=100)


def _png(figure: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def qini_png(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Qini curves (gain per row above random, by share targeted) with the random line at zero."""
    figure, axes = _figure()
    for label, (fractions, curve) in curves.items():
        axes.plot(fractions, curve, label=f"{label} (Qini {np.trapezoid(curve, fractions):.4f})")
    axes.axhline(0.0, linestyle=":", color="grey", label="random targeting")
    axes.set(
        xlabel="share of applications targeted (highest predicted effect first)",
        ylabel="repayment gain per application above random",
        title="Qini curve (test)",
    )
    axes.legend(loc="best", fontsize=8)
    return _png(figure)


def segments_png(segments: dict[str, pd.DataFrame]) -> bytes:
    """Per segment: the DR estimate with its 95% interval, the model's mean prediction and the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes_list = plt.subplots(
        1, max(1, len(segments)), figsize=(6 * max(1, len(segments)), 4.5), dpi=100, squeeze=False
    )
    for axes, (name, table) in zip(axes_list[0], segments.items(), strict=False):
        x = np.arange(len(table))
        errors = np.vstack([table["dr_estimate"] - table["dr_lower"], table["dr_upper"] - table["dr_estimate"]])
        axes.errorbar(x - 0.15, table["dr_estimate"], yerr=errors, fmt="o", capsize=3, label="DR estimate (95% CI)")
        axes.plot(x, table["predicted"], "s", label="model mean prediction")
        if "true" in table:
            axes.plot(x + 0.15, table["true"], "x", color="black", label="truth")
        axes.axhline(0.0, linestyle=":", color="grey")
        axes.set_xticks(x, [str(s) for s in table["segment"]])
        axes.set(xlabel=name, ylabel="reduction in default probability", title=f"Effect by {name} (test)")
        axes.legend(fontsize=8)
    return _png(figure)


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
            f"- Qini with true effects: {figures['qini_true']:.5f} = {figures['qini_share_of_oracle']:.2f} of the oracle's "
            f"({figures['qini_oracle']:.5f})",
            f"- policy value (USD per application): model {policy['model']:.3f} (treats {policy['model_treated_share']:.0%}), "
            f"everyone {policy['treat_all']:.3f}, no one 0, oracle {policy['oracle']:.3f}",
        ]
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


def register_uplift_winner(
    spec: ExperimentSpec,
    builder: UpliftFamilyBuilder,
    model: Any,
    best_params: dict[str, Any],
    splits: Splits,
    registry_uri: str,
    counts: TrialCounts,
    experiment_seconds: float,
    overlap: um.OverlapReport,
    full: TrainingFrame,
    trimmed: TrainingFrame,
    estimated_propensity: np.ndarray,
) -> tuple[ArtifactManifest, dict[str, Any]]:
    """Evaluate the refitted winner once on the test split, write its report, register it (champion if first)."""
    test = splits.test
    effect = builder.predict(model, test)
    world = test.lineage.world
    truth = true_effects(world, test.ids) if world else None
    evaluation = evaluate_uplift(effect, test, spec.model.economics, spec.seed, truth)
    overall = average_effects(trimmed, spec.seed, true_effects(world, trimmed.ids) if world else None)
    validation = builder.evaluate(model, test, spec.seed)
    metrics = {**validation, "ate": overall["adjusted"]["estimate"], "ate_std_error": overall["adjusted"]["std_error"]}
    for key in ("pehe", "qini_share_of_oracle", "ate_adjusted_error"):
        if key in evaluation.figures:
            metrics[key] = float(evaluation.figures[key])
    report: dict[str, Any] = {
        "experiment": spec.name,
        "model": spec.model_name,
        "family": spec.model.kind,
        "cohort": spec.model.cohort if spec.data.source == "feature_table" else "dataset",
        "best_params": best_params,
        "test_metrics": metrics,
        "average_effect": overall,
        "test": evaluation.figures,
        "overlap": overlap.as_dict(),
        "trials": vars(counts),
        "experiment_seconds": round(experiment_seconds, 2),
    }
    if world:
        untrimmed = full.take(np.flatnonzero(~overlap.keep))
        report["trimmed_rows_true_ate"] = (
            float(np.mean(true_effects(world, untrimmed.ids))) if len(untrimmed.ids) else None
        )
    if full.propensity is not None:
        report["propensity_recorded_vs_estimated_mae"] = float(np.mean(np.abs(full.propensity - estimated_propensity)))
    report_files = {
        "qini.png": qini_png(evaluation.curves),
        "segments.png": segments_png(evaluation.segments),
        "report.md": report_markdown(report, evaluation.segments).encode(),
        "report.json": json.dumps(report, indent=1, sort_keys=True, default=str).encode(),
        "segments.json": json.dumps(
            {k: v.to_dict(orient="records") for k, v in evaluation.segments.items()}, indent=1, default=str
        ).encode(),
    }
    from tala_ray.tuning.finalize import register_with_lineage

    manifest = register_with_lineage(
        spec, "uplift", test, best_params, metrics, report, {**builder.files(model), **report_files}, registry_uri
    )
    return manifest, report
