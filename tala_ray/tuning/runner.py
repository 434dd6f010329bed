"""The experiment pipeline, the same for every family: spec -> prepare -> split -> Ray Tune -> best trial
-> refit -> evaluate once on the test split -> register. The family's hooks: `tala_ray.tuning.family`."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tala_ray.core.errors import UserError
from tala_ray.models.metrics import METRIC_NAMES
from tala_ray.models.training_data import Splits, TrainingFrame, combine, split_frame
from tala_ray.tuning.catalog import FAMILY_BUILDERS
from tala_ray.tuning.family import FamilyBuilder
from tala_ray.tuning.finalize import register_with_lineage, winner_report
from tala_ray.tuning.space import to_tune_space
from tala_ray.tuning.spec import ExperimentSpec

log = logging.getLogger(__name__)


class ExperimentInterrupted(UserError):
    """The experiment stopped before every trial finished; its state is saved for `--resume`."""


@dataclass
class TrialCounts:
    total: int
    finished: int
    errored: int  # failed for good after max_failures retries
    crashes: int  # every crash, retried or not
    retries: int  # crashes that were retried (bounded by the spec's max_failures)


@dataclass
class ExperimentOutcome:
    spec: ExperimentSpec
    best_params: dict[str, Any]
    best_valid: dict[str, float]
    test_metrics: dict[str, float]
    trials: TrialCounts
    model_name: str
    version: str
    experiment_path: str
    elapsed_seconds: float
    report: dict[str, Any] = field(default_factory=dict)


def run_trial(
    config: dict[str, Any], *, train: TrainingFrame, valid: TrainingFrame, builder: FamilyBuilder, seed: int
) -> None:
    """The Tune trainable: one configuration, reporting validation metrics as it trains."""
    from ray import tune

    builder.train_trial(config, seed, train, valid, report=tune.report)


def experiment_path(spec: ExperimentSpec, runs_root: str) -> Path:
    return Path(runs_root).absolute() / spec.name


def _scheduler(spec: ExperimentSpec) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if spec.scheduler.kind == "asha":
        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=spec.scheduler.max_t,
            grace_period=spec.scheduler.grace_period,
            reduction_factor=spec.scheduler.reduction_factor,
        )
    return FIFOScheduler()


def _tuner(
    spec: ExperimentSpec, builder: FamilyBuilder, splits: Splits, path: Path, resume: bool, callbacks: list[Any]
) -> Any:
    """A new Tuner, or the interrupted one restored from `path` (finished trials are not rerun)."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, train=splits.train, valid=splits.valid, builder=builder, seed=spec.seed),
        {"cpu": spec.resources.cpu},
    )
    if resume:
        if not tune.Tuner.can_restore(str(path)):
            raise UserError(f"--resume: no experiment state at {str(path)!r} to resume")
        return tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True)
    if path.exists():
        raise UserError(f"experiment {spec.name!r}: {str(path)!r} exists; pass --resume to continue it or --overwrite")
    return tune.Tuner(
        trainable,
        param_space=to_tune_space(spec.model.search_space),
        tune_config=tune.TuneConfig(
            metric=spec.metric,
            mode=spec.mode,
            scheduler=_scheduler(spec),
            num_samples=spec.trials,
            search_alg=BasicVariantGenerator(random_state=spec.seed),
        ),
        run_config=tune.RunConfig(
            storage_path=str(path.parent),
            name=path.name,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            callbacks=callbacks,
            verbose=1,
        ),
    )


def _count_trials(path: Path) -> TrialCounts:
    from ray.tune import ExperimentAnalysis

    trials = ExperimentAnalysis(str(path)).trials
    statuses = [trial.status for trial in trials]
    crashes = sum(trial.run_metadata.num_failures for trial in trials)
    return TrialCounts(
        total=len(trials),
        finished=statuses.count("TERMINATED"),
        errored=statuses.count("ERROR"),
        crashes=crashes,
        retries=crashes - statuses.count("ERROR"),
    )


def tune_trials(
    spec: ExperimentSpec,
    builder: FamilyBuilder,
    splits: Splits,
    runs_root: str,
    resume: bool = False,
    callbacks: list[Any] | None = None,
) -> tuple[dict[str, Any], dict[str, float], TrialCounts, Path]:
    """Run (or resume) the trials; return the best config, its validation metrics, the counts and the run path."""
    path = experiment_path(spec, runs_root)
    results = _tuner(spec, builder, splits, path, resume, callbacks or []).fit()
    counts = _count_trials(path)
    if counts.finished + counts.errored < spec.trials:
        raise ExperimentInterrupted(
            f"experiment {spec.name!r} interrupted after {counts.finished} of {spec.trials} trials; "
            f"state saved in {str(path)!r}: run the same command with --resume"
        )
    if counts.finished == 0:
        raise UserError(
            f"experiment {spec.name!r}: every trial failed ({counts.errored}); see the logs in {str(path)!r}"
        )
    best = results.get_best_result(metric=spec.metric, mode=spec.mode, scope="last", filter_nan_and_inf=True)
    valid_metrics = {k: float(v) for k, v in best.metrics.items() if k in METRIC_NAMES}
    return dict(best.config), valid_metrics, counts, path


def run_experiment(
    spec: ExperimentSpec,
    registry_uri: str,
    runs_root: str,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: list[Any] | None = None,
    frame: TrainingFrame | None = None,
    builder: FamilyBuilder | None = None,
) -> ExperimentOutcome:
    """The whole experiment on the current Ray cluster.

    `frame` replaces loading `spec.data`; `builder` replaces the family's entry in FAMILY_BUILDERS.
    `callbacks` are extra Ray Tune callbacks (benchmarks use them to time results).
    """
    started = time.perf_counter()
    path = experiment_path(spec, runs_root)
    if overwrite and not resume and path.exists():
        shutil.rmtree(path)
    builder = builder or FAMILY_BUILDERS[spec.model.kind]
    prepared = builder.prepare(spec, frame)
    splits = split_frame(prepared.frame, spec.split, spec.seed)
    log.info(
        "experiment %s: train %d, valid %d, test %d rows",
        spec.name,
        len(splits.train.target),
        len(splits.valid.target),
        len(splits.test.target),
    )
    best_params, best_valid, counts, path = tune_trials(spec, builder, splits, runs_root, resume, callbacks)
    model = builder.refit(best_params, spec.seed, combine(splits.train, splits.valid))
    tuning_seconds = time.perf_counter() - started
    evaluation = builder.evaluate(spec, model, splits, prepared)
    report, report_files = winner_report(spec, best_params, evaluation, counts, tuning_seconds)
    files = {**builder.files(model), **report_files}
    manifest = register_with_lineage(spec, builder.registry_kind, splits.test, report, files, registry_uri)
    return ExperimentOutcome(
        spec=spec,
        best_params=best_params,
        best_valid=best_valid,
        test_metrics=manifest.metrics,
        trials=counts,
        model_name=manifest.name,
        version=manifest.version,
        experiment_path=str(path),
        elapsed_seconds=time.perf_counter() - started,
        report=report,
    )
