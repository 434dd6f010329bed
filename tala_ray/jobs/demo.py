"""The main job, end to end on one Ray cluster: world → features → tuning → registry → Serve → traffic → report.

Everything it writes lives under one work directory (default `runs/demo`), which it replaces on
each run: the worlds, the feature tables, Ray Tune's runs, the registry, the prediction log and
the report (`report.md`, `report.json`, and the models' plots inside the registry).
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import roc_auc_score

log = logging.getLogger(__name__)

CREDIT_MODEL = "credit_pd"
UPLIFT_MODEL = "uplift"


class DemoOptions(BaseModel):
    """Knobs of the end-to-end run; the defaults finish in well under 15 minutes on 2 cores."""

    model_config = ConfigDict(extra="forbid")

    workdir: Path = Path("runs/demo")
    applicants: int = Field(20_000, ge=2_000, description="Applicants in the training world.")
    holdout_applicants: int = Field(5_000, ge=500, description="Applicants in the fresh world the policy is judged on.")
    seed: int = Field(7, ge=0)
    credit_spec: Path = Path("experiments/credit_gbm.yaml")
    uplift_spec: Path = Path("experiments/uplift_xlearner.yaml")
    credit_trials: int = Field(4, ge=1)
    uplift_trials: int = Field(2, ge=1)
    serve_config: Path = Path("serve_configs/credit_decision.yaml")
    slo: Path = Path("slo.yaml")
    port: int = Field(8000, gt=0, lt=65536)
    traffic_seconds: float = Field(15.0, gt=0)
    concurrency: int = Field(8, ge=1)
    batch_size: int = Field(50, ge=1)
    keep_serving: bool = False
    address: str | None = None
    haproxy: bool = False


class Step:
    """Numbered progress lines with elapsed time."""

    def __init__(self, total: int, echo: Callable[[str], None]) -> None:
        self.total, self.echo, self.index, self.started = total, echo, 0, time.perf_counter()

    def __call__(self, what: str) -> None:
        self.index += 1
        self.echo(f"[{self.index}/{self.total}] {what} (t={time.perf_counter() - self.started:.0f}s)")


def _tune(spec_path: Path, features: Path, world: Path, trials: int, registry: Path, runs: Path) -> Any:
    from tala_ray.core.registry import Registry
    from tala_ray.tuning.runner import run_experiment
    from tala_ray.tuning.spec import ExperimentSpec, load_experiment_spec, with_data_overrides

    spec = with_data_overrides(load_experiment_spec(spec_path), str(features), str(world))
    spec = ExperimentSpec.model_validate(spec.model_dump() | {"trials": trials})
    outcome = run_experiment(spec, str(registry), str(runs), overwrite=True)
    Registry(str(registry)).set_alias(outcome.model_name, "champion", outcome.version)
    return outcome


def _evaluate_on_holdout(options: DemoOptions, paths: dict[str, Path], policy: Any) -> dict[str, Any]:
    """Credit AUC against the best possible and the policy's profit against its rivals, on a fresh world."""
    from tala_ray.evaluation.policy_value import compare_strategies
    from tala_ray.evaluation.truth import read_truth
    from tala_ray.features.table import read_feature_table
    from tala_ray.models.predictors import load_predictor
    from tala_ray.traffic.replay import read_world_tables

    features = read_feature_table(str(paths["holdout_features"]))
    world = read_world_tables(str(paths["holdout_world"]))
    truth = read_truth(str(paths["holdout_world"]), features["application_id"].to_numpy(), ("pd_control", "pd_treated"))
    applications = world["applications"].set_index("application_id").loc[features["application_id"]]
    credit = load_predictor(str(paths["registry"]), CREDIT_MODEL, kind="credit")
    uplift = load_predictor(str(paths["registry"]), UPLIFT_MODEL, kind="uplift")
    predicted_pd = credit.predict_proba(features)
    predicted_uplift = uplift.effect(features)
    true_pd = np.where(applications["treatment"] == 1, truth["pd_treated"], truth["pd_control"])
    true_uplift = (truth["pd_control"] - truth["pd_treated"]).to_numpy()
    return {
        "rows": len(features),
        "credit_auc": float(roc_auc_score(applications["defaulted"], predicted_pd)),
        "best_possible_auc": float(roc_auc_score(applications["defaulted"], true_pd)),
        "uplift_correlation_with_truth": float(np.corrcoef(predicted_uplift, true_uplift)[0, 1]),
        "strategies": [
            s.model_dump() for s in compare_strategies(predicted_pd, predicted_uplift, applications, truth, policy)
        ],
    }


def _serve(options: DemoOptions, paths: dict[str, Path]) -> tuple[str, dict[str, str]]:
    """Deploy the Serve config against the demo registry; return the base URL and auth headers."""
    from tala_ray.serving.launch import deploy, load_serve_config

    api_key = secrets.token_urlsafe(24)
    key_file = paths["workdir"] / "api_key"
    key_file.write_text(api_key + "\n")
    key_file.chmod(0o600)
    overrides = {
        "registry_uri": str(paths["registry"]),
        "credit_model": {"name": CREDIT_MODEL, "ref": "champion"},
        "uplift_model": {"name": UPLIFT_MODEL, "ref": "champion"},
        "challenger_mode": "off",
        "prediction_log_uri": str(paths["prediction_log"]),
        "api_key_file": str(key_file),
    }
    config = load_serve_config(options.serve_config, overrides, pin_versions=True)
    config.http_options.port = options.port
    deploy(config, timeout_s=300)
    return f"http://{config.http_options.host}:{options.port}", {"Authorization": f"Bearer {api_key}"}


def _traffic(options: DemoOptions, url: str, headers: dict[str, str], world: Path) -> dict[str, Any]:
    """Single decisions, then the batch endpoint, with real HTTP from concurrent clients."""
    from tala_ray.monitoring.slo import load_slo
    from tala_ray.traffic.loadgen import closed_loop, paced
    from tala_ray.traffic.replay import read_world_tables, sample_payloads

    payloads = sample_payloads(read_world_tables(str(world)), 300, seed=options.seed)
    single = closed_loop(f"{url}/v1/decisions", payloads, headers, options.concurrency, options.traffic_seconds)
    fraction = load_slo(options.slo).latency.at_load_fraction  # the latency objective's load
    half = paced(
        f"{url}/v1/decisions",
        payloads,
        headers,
        max(1.0, single.requests_per_s * fraction),
        max(5.0, options.traffic_seconds / 3),
    )
    batches = [
        {"applications": payloads[i : i + options.batch_size]} for i in range(0, len(payloads), options.batch_size)
    ]
    batches = [b for b in batches if len(b["applications"]) == options.batch_size]
    batch = closed_loop(
        f"{url}/v1/decisions/batch",
        batches,
        headers,
        max(2, options.concurrency // 4),
        max(5.0, options.traffic_seconds / 3),
        items_per_request=options.batch_size,
    )
    figures = lambda f: {  # noqa: E731
        "requests": f.requests,
        "failed": f.failed,
        "requests_per_s": round(f.requests_per_s, 1),
        "decisions_per_s": round(f.items_per_s, 1),
        "p50_ms": round(f.percentile_ms(50), 1),
        "p99_ms": round(f.percentile_ms(99), 1),
        "status_counts": f.status_counts,
    }
    return {
        "concurrency": options.concurrency,
        "single": figures(single),
        "paced": {**figures(half), "rate_per_s": round(half.requests / half.seconds, 1) if half.seconds else 0.0},
        "batch": figures(batch),
    }


def slo_checks(options: DemoOptions, traffic: dict[str, Any]) -> list[dict[str, Any]]:
    """The demo's traffic against `slo.yaml`: p99 of the paced run, availability of everything.
    Throughput objectives need the baseline and full-size batches: `bench/serve_decisions.py`."""
    from tala_ray.monitoring.slo import MeasuredFigures, check_slo, load_slo

    runs = [traffic[name] for name in ("single", "paced", "batch")]
    measured = MeasuredFigures(
        latency_ms=traffic["paced"]["p99_ms"],
        requests=sum(r["requests"] for r in runs),
        failed_requests=sum(r["failed"] for r in runs),
    )
    return [check.model_dump() for check in check_slo(load_slo(options.slo), measured)]


def run_demo(options: DemoOptions, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole system once; return (and write) the report."""
    from tala_ray.core.ray_runtime import ensure_ray
    from tala_ray.data.generate import WorldSpec, generate_world
    from tala_ray.features.build import build_feature_table
    from tala_ray.policy.decision import PolicyParams
    from tala_ray.serving.launch import load_serve_config, use_haproxy_environment

    workdir = options.workdir.resolve()
    paths = {
        name: workdir / name
        for name in ("world", "features", "holdout_world", "holdout_features", "registry", "runs", "prediction_log")
    }
    paths["workdir"] = workdir
    config = load_serve_config(options.serve_config)  # a bad config fails before any work
    policy = PolicyParams.model_validate(config.applications[0].args.get("policy", {}))
    step = Step(8, echo)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)

    step("starting Ray")
    if options.haproxy:
        for note in use_haproxy_environment(options.address):
            echo(f"note: {note}")
    ensure_ray(options.address)
    step(
        f"generating a world of {options.applicants:,} applicants and a fresh holdout of {options.holdout_applicants:,}"
    )
    generate_world(WorldSpec(applicants=options.applicants, seed=options.seed), str(paths["world"]))
    generate_world(WorldSpec(applicants=options.holdout_applicants, seed=options.seed + 1), str(paths["holdout_world"]))
    step("building point-in-time features with Ray Data")
    build_feature_table(str(paths["world"]), str(paths["features"]))
    build_feature_table(str(paths["holdout_world"]), str(paths["holdout_features"]))
    step(f"tuning the credit model ({options.credit_spec}, {options.credit_trials} trials)")
    credit = _tune(
        options.credit_spec, paths["features"], paths["world"], options.credit_trials, paths["registry"], paths["runs"]
    )
    step(f"tuning the uplift model ({options.uplift_spec}, {options.uplift_trials} trials)")
    uplift = _tune(
        options.uplift_spec, paths["features"], paths["world"], options.uplift_trials, paths["registry"], paths["runs"]
    )
    step("judging the champions and the policy on the holdout world against the truth")
    holdout = _evaluate_on_holdout(options, paths, policy)
    step(f"deploying the decision service on Ray Serve (port {options.port})")
    url, headers = _serve(options, paths)
    step(f"sending HTTP traffic for {options.traffic_seconds:.0f}s ({options.concurrency} clients), then batches")
    traffic = _traffic(options, url, headers, paths["holdout_world"])

    report = {
        "credit": {
            "model": f"{CREDIT_MODEL}@{credit.version}",
            **{
                k: credit.report.get(k)
                for k in (
                    "test_metrics",
                    "best_possible_auc",
                    "gap_to_best_possible_auc",
                    "baseline_logistic_auc",
                    "experiment_seconds",
                )
            },
        },
        "uplift": {
            "model": f"{UPLIFT_MODEL}@{uplift.version}",
            "test_metrics": uplift.report.get("test_metrics"),
            "experiment_seconds": uplift.report.get("experiment_seconds"),
        },
        "holdout": holdout,
        "serving": {
            "url": url,
            "ingress": "haproxy" if options.haproxy else "proxy",
            **traffic,
            "slo": slo_checks(options, traffic),
        },
        "artifacts": {name: str(path) for name, path in paths.items()},
        "elapsed_seconds": round(time.perf_counter() - step.started, 1),
    }
    (workdir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (workdir / "report.md").write_text(render_report(report))
    echo(render_report(report))
    if not options.keep_serving:
        from ray import serve

        serve.shutdown()
    return report


def render_report(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    from tala_ray.monitoring.slo import SloCheck

    credit, uplift, holdout, serving = report["credit"], report["uplift"], report["holdout"], report["serving"]
    qini = (uplift["test_metrics"] or {}).get("qini_share_of_oracle")
    lines = [
        "# tala-ray end-to-end report",
        "",
        "## Credit model",
        f"- champion `{credit['model']}`: test AUC {credit['test_metrics']['auc']:.4f}, best possible "
        f"{credit['best_possible_auc']:.4f} (gap {credit['gap_to_best_possible_auc']:.4f}), logistic baseline "
        f"{credit['baseline_logistic_auc']:.4f}; tuned in {credit['experiment_seconds']:.0f}s",
        f"- on the fresh holdout world ({holdout['rows']:,} applications): AUC {holdout['credit_auc']:.4f} "
        f"against a best possible {holdout['best_possible_auc']:.4f}",
        "",
        "## Uplift model",
        f"- champion `{uplift['model']}`: Qini {qini:.2f} of the oracle's (true effects), test metrics "
        f"`{json.dumps({k: round(v, 4) for k, v in (uplift['test_metrics'] or {}).items()})}`",
        f"- holdout: correlation of estimated and true individual effects {holdout['uplift_correlation_with_truth']:.3f}",
        "",
        "## Policy profit per application (holdout, valued with the true default probabilities)",
        "",
        "| strategy | profit / application | approved | with intervention |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {s['strategy']} | {s['profit_per_application']:.2f} | {s['approval_rate']:.1%} | {s['intervention_rate']:.1%} |"
            for s in holdout["strategies"]
        ),
        "",
        f"## Serving ({serving['url']}, {serving['concurrency']} concurrent clients, "
        + (
            "HAProxy and direct ingress)"
            if serving["ingress"] == "haproxy"
            else "Serve's Python proxy: `--haproxy` is the fast path)"
        ),
        "",
        "| endpoint | requests | failed | requests/s | decisions/s | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {name} | {f['requests']} | {f['failed']} | {f['requests_per_s']} | {f['decisions_per_s']} | {f['p50_ms']} | {f['p99_ms']} |"
            for name, f in (
                ("POST /v1/decisions", serving["single"]),
                (f"POST /v1/decisions, paced at {serving['paced']['rate_per_s']}/s", serving["paced"]),
                ("POST /v1/decisions/batch", serving["batch"]),
            )
        ),
        "",
        "Service level objectives (`slo.yaml`; they are set for the shipped `--haproxy` configuration, which "
        "`bench/serve_decisions.py` checks in full; through the Python proxy the half-load p99 is 40-100 ms):",
        "",
        *(f"- {SloCheck.model_validate(check).line()}" for check in serving["slo"]),
        "",
        "## Where things are",
        *(f"- {name}: `{path}`" for name, path in report["artifacts"].items()),
        f"- report: `{report['artifacts']['workdir']}/report.md` (and `report.json`); model reports and plots "
        "(ROC, calibration, Qini) sit next to each model version in the registry",
        f"- total time {report['elapsed_seconds']:.0f}s",
    ]
    return "\n".join(lines) + "\n"
