"""`tala-ray tune SPEC`: run an experiment spec on Ray Tune and register the winner."""

from __future__ import annotations

from typing import Annotated

import typer

from tala_ray.core.settings import get_settings

# A group with no subcommands, so that `tala-ray tune SPEC --options` reads like a single command.
app = typer.Typer(context_settings={"allow_interspersed_args": True}, subcommand_metavar="")


@app.callback(invoke_without_command=True)
def tune(
    spec: Annotated[str, typer.Argument(help="Experiment spec YAML (experiments/*.yaml).")],
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address; default: RAY_ADDRESS or a local cluster.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted experiment; finished trials are kept.")] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Discard an earlier run of this experiment and start afresh.")
    ] = False,
    registry: Annotated[str | None, typer.Option(help="Registry URI [default: $TALA_REGISTRY_URI].")] = None,
    runs_root: Annotated[str | None, typer.Option(help="Tune state directory [default: $TALA_RUNS_ROOT].")] = None,
    data_path: Annotated[
        str | None, typer.Option(help="Override data.path (e.g. an absolute path inside a Ray job).")
    ] = None,
    world: Annotated[str | None, typer.Option(help="Override data.world (feature-table experiments).")] = None,
) -> None:
    """Tune, refit the best trial, test it once, write it and its report to the registry."""
    from tala_ray.core.errors import UserError
    from tala_ray.core.ray_runtime import ensure_ray
    from tala_ray.tuning.runner import run_experiment
    from tala_ray.tuning.spec import load_experiment_spec, with_data_overrides

    if resume and overwrite:
        raise UserError("--resume and --overwrite: choose one")
    experiment = with_data_overrides(load_experiment_spec(spec), data_path, world)  # fail before starting Ray
    settings = get_settings()
    ensure_ray(address)
    outcome = run_experiment(
        experiment,
        registry_uri=registry or settings.registry_uri,
        runs_root=runs_root or settings.runs_root,
        resume=resume,
        overwrite=overwrite,
    )
    counts = outcome.trials
    typer.echo(
        f"trials: {counts.finished} finished, {counts.errored} failed, {counts.retries} crashes retried "
        f"(out of {counts.crashes} crashes) "
        f"({outcome.elapsed_seconds:.1f}s)"
    )
    typer.echo(f"best params: {outcome.best_params}")
    typer.echo("test: " + ", ".join(f"{k}={v:.4f}" for k, v in outcome.test_metrics.items()))
    for key in ("baseline_logistic_auc", "best_possible_auc", "gap_to_best_possible_auc"):
        if key in outcome.report:
            typer.echo(f"{key}: {outcome.report[key]:.4f}")
    typer.echo(f"registered {outcome.model_name}@{outcome.version}")
