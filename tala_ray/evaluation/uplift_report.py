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

A continuous target (days late) gets the same figures on its own scale (treated minus control, in
its units), its segments by decile of the predicted outcome without intervention, and no policy value
(that needs a default probability). Several arms get every figure per arm, and the policy that picks
per application the arm worth most net of its cost, against each single arm and the oracle.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from tala_ray.data.schema import FX_PER_USD, INTERVENTION
from tala_ray.evaluation.held_out import HeldOutEvaluation
from tala_ray.evaluation.plots import REPAYMENT_GAIN, qini_png, segments_png
from tala_ray.evaluation.truth import true_arm_effects
from tala_ray.models import uplift_metrics as um
from tala_ray.models.preprocessing import Preprocessor
from tala_ray.models.training_data import TrainingFrame
from tala_ray.models.uplift_validation import OverlapTrimmed, outcome, validation_scores
from tala_ray.policy.economics import Economics, arm_costs, value_of_avoided_default

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


def _columns(values: np.ndarray | None) -> np.ndarray | None:
    """Per-arm values as rows x arms (one arm's may come as a vector)."""
    return None if values is None else np.asarray(values, dtype=np.float64).reshape(len(values), -1)


def _pseudo_outcomes(frame: TrainingFrame, seed: int) -> tuple[np.ndarray, np.ndarray, um.Nuisance, np.ndarray]:
    """The fitted outcome, the arm codes, the cross-fitted nuisance and every arm's DR pseudo-outcomes."""
    y, t = outcome(frame), frame.treatment.astype(np.int64)
    dense = Preprocessor.fit(frame.features).transform_dense(frame.features).astype(np.float64)
    nuisance = um.cross_fitted_nuisance(dense, y, t, seed=seed)
    return y, t, nuisance, um.dr_arm_pseudo_outcomes(y, t, nuisance)


def _naive(y: np.ndarray, t: np.ndarray, arm: int) -> um.EffectEstimate:
    """Arm `arm` against none on the rows that got one of the two (every row with one arm)."""
    rows = np.flatnonzero((t == 0) | (t == arm))
    return um.naive_difference(y[rows], t[rows] == arm)


def _per_arm(figures: list[dict[str, Any]], arms: list[str]) -> dict[str, Any]:
    """One arm's figures as they are; several arms' under `arms`, by name."""
    return figures[0] if len(arms) == 1 else {"arms": dict(zip(arms, figures, strict=True))}


def average_effects(
    frame: TrainingFrame, seed: int, truth: np.ndarray | None = None, arms: list[str] | None = None
) -> dict[str, Any]:
    """The average effect over all (trimmed) rows: cross-fitted AIPW with its CI against the naive difference
    (per arm with several arms; `truth`: rows x arms, or a vector for one arm).

    It uses every row, not just the test split: the nuisance models are cross-fitted, so no row's
    own outcome predicts it, and the interval is as narrow as the data allow.
    """
    arms = arms or [INTERVENTION]
    y, t, _, pseudo = _pseudo_outcomes(frame, seed)
    truth = _columns(truth)
    per_arm = []
    for k in range(len(arms)):
        adjusted, naive = um.mean_with_ci(pseudo[:, k]), _naive(y, t, k + 1)
        figures: dict[str, Any] = {"adjusted": adjusted.as_dict(), "naive": naive.as_dict()}
        if truth is not None:
            true_ate = float(np.mean(truth[:, k]))
            figures.update(
                {
                    "true_ate": true_ate,
                    "adjusted_error": adjusted.estimate - true_ate,
                    "adjusted_covers_truth": bool(adjusted.covers(true_ate)),
                    "naive_error": naive.estimate - true_ate,
                    "adjusted_closer_than_naive": bool(
                        abs(adjusted.estimate - true_ate) < abs(naive.estimate - true_ate)
                    ),
                }
            )
        per_arm.append(figures)
    return {"rows": int(len(y)), **_per_arm(per_arm, arms)}


def evaluate_uplift(
    effect: np.ndarray,
    frame: TrainingFrame,
    economics: Economics,
    seed: int,
    truth: np.ndarray | None = None,
    costs: dict[str, float] | None = None,
) -> UpliftEvaluation:
    """Every figure of the report for `effect` (the model's predictions) on `frame`.

    `costs`: the intervention arms and their costs (default: the one intervention at the economics'
    cost); with several, `effect` and `truth` are rows x arms."""
    costs = costs or arm_costs(economics, None)
    arms = list(costs)
    y, t, nuisance, pseudo = _pseudo_outcomes(frame, seed)
    effects, truths = _columns(effect), _columns(truth)
    evaluation = UpliftEvaluation(figures={"rows": int(len(y)), "treated_share": float(np.mean(t > 0))})
    baseline = 1.0 - nuisance.mu0 if frame.is_binary else nuisance.mu0  # the outcome without the intervention
    deciles = um.deciles(baseline)
    per_arm = []
    for k, arm in enumerate(arms):
        label = "" if len(arms) == 1 else f" ({arm})"
        arm_effect, arm_pseudo = effects[:, k], pseudo[:, k]
        arm_truth = None if truths is None else truths[:, k]
        adjusted, naive = um.mean_with_ci(arm_pseudo), _naive(y, t, k + 1)
        figures: dict[str, Any] = {
            "treated_share": float(np.mean(t == k + 1)),
            "ate_adjusted": adjusted.as_dict(),
            "ate_naive": naive.as_dict(),
            "mean_predicted_effect": float(np.mean(arm_effect)),
            "dr_qini": um.qini_coefficient(arm_effect, arm_pseudo),
            "dr_auuc": um.auuc(arm_effect, arm_pseudo),
        }
        evaluation.curves[f"model{label} (DR pseudo-outcomes)"] = um.qini_curve(arm_effect, arm_pseudo)
        if "country" in frame.features.columns:
            evaluation.segments[f"country{label}"] = um.segment_effects(
                frame.features["country"].astype(str), arm_pseudo, arm_effect, arm_truth
            )
        segment = "risk decile" if frame.is_binary else "outcome decile"
        evaluation.segments[f"{segment}{label}"] = um.segment_effects(deciles, arm_pseudo, arm_effect, arm_truth)
        if arm_truth is not None:
            figures.update(_against_truth(arm_effect, arm_truth, adjusted, naive))
            evaluation.curves[f"model{label} (true effects)"] = um.qini_curve(arm_effect, arm_truth)
            evaluation.curves[f"oracle{label} (true effects)"] = um.qini_curve(arm_truth, arm_truth)
        per_arm.append(figures)
    if len(arms) == 1:
        evaluation.figures |= {"treated_share": per_arm[0].pop("treated_share")} | per_arm[0]
    else:
        evaluation.figures |= {
            "arms": dict(zip(arms, per_arm, strict=True)),
            "dr_qini": float(np.mean([f["dr_qini"] for f in per_arm])),
            "dr_auuc": float(np.mean([f["dr_auuc"] for f in per_arm])),
        }
    if truths is not None and frame.is_binary:
        value, usd_per_local = value_per_effect(frame.features, economics)
        key = "policy_value_usd_per_application"
        if len(arms) == 1:
            evaluation.figures[key] = um.policy_values(effect, truth, value, costs[arms[0]], usd_per_local)
        else:
            evaluation.figures[key] = um.arm_policy_values(effects, truths, value, costs, usd_per_local)
    return evaluation


def _against_truth(
    effect: np.ndarray, truth: np.ndarray, adjusted: um.EffectEstimate, naive: um.EffectEstimate
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
    }


def evaluate_uplift_model(
    effect: np.ndarray,
    test: TrainingFrame,
    trimmed: OverlapTrimmed,
    economics: Economics,
    seed: int,
    cohort: str,
    costs: dict[str, float] | None = None,
) -> HeldOutEvaluation:
    """The refitted model's effects `effect` on the test split, and the average effect over all trimmed rows.

    `costs`: the intervention arms (treatment codes 1, 2, ...) and their costs; default the one intervention."""
    costs = costs or arm_costs(economics, None)
    arms, world = list(costs), test.lineage.world

    def truth_of(frame: TrainingFrame) -> np.ndarray | None:
        if not world:
            return None
        truth = true_arm_effects(world, frame.ids, frame.target_name, arms)
        return truth[:, 0] if len(arms) == 1 else truth

    evaluation = evaluate_uplift(effect, test, economics, seed, truth_of(test), costs)
    overall = average_effects(trimmed.frame, seed, truth_of(trimmed.frame), arms)
    metrics = {**validation_scores(effect, test, seed), **_headline_metrics(evaluation.figures, overall, arms)}
    figures: dict[str, Any] = {
        "cohort": cohort,
        "economics": {**economics.model_dump(), "currency": CURRENCY},
        "average_effect": overall,
        "test": evaluation.figures,
        "overlap": trimmed.overlap.as_dict(),
    }
    if not test.is_binary:
        figures["target"] = {"column": test.target_name, "type": test.target_type}
    if len(arms) > 1:
        figures["intervention_costs"] = costs
    if world:
        untrimmed = trimmed.full.take(np.flatnonzero(~trimmed.overlap.keep))
        untrimmed_truth = truth_of(untrimmed) if len(untrimmed.ids) else None
        figures["trimmed_rows_true_ate"] = (
            None if untrimmed_truth is None else _mean_by_arm(_columns(untrimmed_truth), arms)
        )
    if trimmed.full.propensity is not None:
        estimated = trimmed.estimated_propensity
        intervened = estimated if estimated.ndim == 1 else 1.0 - estimated[:, 0]  # P(any arm), as recorded
        figures["propensity_recorded_vs_estimated_mae"] = float(np.mean(np.abs(trimmed.full.propensity - intervened)))
    segments = {k: v.to_dict(orient="records") for k, v in evaluation.segments.items()}
    effect_label, gain = _effect_units(test)
    files = {
        "qini.png": qini_png(evaluation.curves, gain),
        "segments.png": segments_png(evaluation.segments, effect_label),
        "segments.json": json.dumps(segments, indent=1, default=str).encode(),
    }
    markdown = partial(report_markdown, segments=evaluation.segments)
    return HeldOutEvaluation(metrics=metrics, figures=figures, markdown=markdown, files=files)


def _mean_by_arm(values: np.ndarray, arms: list[str]) -> float | dict[str, float]:
    means = [float(np.mean(values[:, k])) for k in range(len(arms))]
    return means[0] if len(arms) == 1 else dict(zip(arms, means, strict=True))


def _headline_metrics(test: dict[str, Any], overall: dict[str, Any], arms: list[str]) -> dict[str, float]:
    """The registry's test metrics beside the validation scores: the average effect and, on a synthetic
    world, the errors against the truth (per arm with several; the multi-arm policy's share of the oracle)."""
    if len(arms) == 1:
        metrics = {"ate": overall["adjusted"]["estimate"], "ate_std_error": overall["adjusted"]["std_error"]}
        for key in ("pehe", "qini_share_of_oracle", "ate_adjusted_error"):
            if key in test:
                metrics[key] = float(test[key])
        return metrics
    metrics = {}
    for arm in arms:
        metrics[f"ate_{arm}"] = overall["arms"][arm]["adjusted"]["estimate"]
        metrics[f"ate_std_error_{arm}"] = overall["arms"][arm]["adjusted"]["std_error"]
        for key in ("pehe", "qini_share_of_oracle", "ate_adjusted_error"):
            if key in test["arms"][arm]:
                metrics[f"{key}_{arm}"] = float(test["arms"][arm][key])
    policy = test.get("policy_value_usd_per_application")
    if policy is not None:
        metrics["policy_share_of_oracle"] = float(policy["model_share_of_oracle"])
        metrics["best_single_arm_share_of_oracle"] = float(policy["best_single_arm_share_of_oracle"])
    return metrics


def _effect_units(frame: TrainingFrame) -> tuple[str, str]:
    """What an effect is (the segment plot's axis) and what the Qini curve gains."""
    if frame.is_binary:
        return "reduction in default probability", REPAYMENT_GAIN
    return f"change in {frame.target_name}", f"change in {frame.target_name}"


def report_markdown(report: dict[str, Any], segments: dict[str, pd.DataFrame]) -> str:
    """A readable summary: average effects, ranking, truth comparison, segments, trials."""
    figures, overall = report["test"], report["average_effect"]
    target = report.get("target")
    meaning = (
        "Effects are reductions in default probability."
        if target is None
        else f"Effects are treated-minus-control changes in `{target['column']}` (in its units)."
    )
    lines = [
        f"# {report['model']} ({report['family']})",
        "",
        f"Experiment `{report['experiment']}`, cohort `{report['cohort']}`. {meaning}",
        "",
    ]
    arms = list(figures["arms"]) if "arms" in figures else [None]
    for arm in arms:
        arm_overall = overall if arm is None else overall["arms"][arm]
        arm_figures = figures if arm is None else figures["arms"][arm]
        heading = "" if arm is None else f" of `{arm}`"
        lines += [f"## Average effect{heading} ({overall['rows']} rows after trimming, cross-fitted)", ""]
        lines += _effect_table(arm_overall["adjusted"], arm_overall["naive"], arm_overall.get("true_ate"))
        if "true_ate" in arm_overall:
            lines.append(
                f"- adjusted CI covers the true average effect: {arm_overall['adjusted_covers_truth']}; "
                f"adjusted closer than naive: {arm_overall['adjusted_closer_than_naive']}"
            )
        lines += ["", f"## The model{heading} on the test split ({figures['rows']} rows)", ""]
        lines += _effect_table(arm_figures["ate_adjusted"], arm_figures["ate_naive"], arm_figures.get("true_ate"))
        lines += [f"| model's mean prediction | {arm_figures['mean_predicted_effect']:.4f} | |"]
        lines += ["", f"- DR Qini coefficient: {arm_figures['dr_qini']:.5f}; DR AUUC: {arm_figures['dr_auuc']:.5f}"]
        if "true_ate" in arm_figures:
            lines += [
                f"- PEHE: {arm_figures['pehe']:.4f}",
                f"- Qini with true effects: {arm_figures['qini_true']:.5f} = "
                f"{arm_figures['qini_share_of_oracle']:.2f} of the oracle's ({arm_figures['qini_oracle']:.5f})",
            ]
        if arm is not None:
            lines.append("")
    lines += _policy_lines(report, figures)
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


def _policy_lines(report: dict[str, Any], figures: dict[str, Any]) -> list[str]:
    """The policy value against the truth (one arm: intervene or not; several: the best arm per application)."""
    policy = figures.get("policy_value_usd_per_application")
    if policy is None:
        truth_known = "true_ate" in figures or any("true_ate" in arm for arm in figures.get("arms", {}).values())
        return ["- policy value: needs a binary default target"] if truth_known and "target" in report else []
    if "model_share_of_oracle" not in policy:
        lines = [
            f"- policy value (USD per application): model {policy['model']:.3f} "
            f"(treats {policy['model_treated_share']:.0%}), everyone {policy['treat_all']:.3f}, no one 0, "
            f"oracle {policy['oracle']:.3f}",
        ]
    else:
        single = ", ".join(f"everyone `{arm}` {value:.3f}" for arm, value in policy["treat_all_with"].items())
        shares = ", ".join(f"`{option}` {share:.0%}" for option, share in policy["model_option_shares"].items())
        lines = [
            f"- policy value (USD per application), the best arm per application net of its cost: model "
            f"{policy['model']:.3f} = {policy['model_share_of_oracle']:.2f} of the oracle's {policy['oracle']:.3f}; "
            f"{single}, no one 0; the best single arm (`{policy['best_single_arm']}`) reaches "
            f"{policy['best_single_arm_share_of_oracle']:.2f} of the oracle",
            f"- the model's options: {shares}",
        ]
    if "economics" in report:
        economics = report["economics"]
        costs = report.get("intervention_costs")
        cost = (
            f"intervention cost {economics['intervention_cost']}"
            if costs is None
            else "intervention costs " + ", ".join(f"{arm} {value}" for arm, value in costs.items())
        )
        lines.append(
            f"- the policy's economics: fee rate {economics['fee_rate_per_30_days']} per 30 days, loss given "
            f"default {economics['loss_given_default']}, {cost} "
            "in the application's local currency (as the serving policy)"
        )
    return lines


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
