"""`tala-ray monitor`: judge the prediction log and the outcomes against the training reference; write
the report (Markdown, JSON, PNG plots, one HTML page) and Prometheus metrics. Exit 0 without alerts,
1 with alerts, 2 on bad input. `tala-ray monitor reference` builds the reference from a feature table
and the registered models."""

from __future__ import annotations

from typing import Annotated

import typer

from tala_ray.core.errors import UserError
from tala_ray.core.settings import get_settings

app = typer.Typer(no_args_is_help=False)


@app.callback(invoke_without_command=True)
def monitor(
    ctx: typer.Context,
    reference: Annotated[str | None, typer.Option(help="Training reference (`tala-ray monitor reference`).")] = None,
    log: Annotated[
        str | None, typer.Option(help="Prediction log root [default: $TALA_DATA_ROOT/prediction_log].")
    ] = None,
    outcomes: Annotated[
        str | None, typer.Option(help="Outcome files (release_day=YYYY-MM-DD/...); none: no labels yet.")
    ] = None,
    config: Annotated[str, typer.Option(help="Alert thresholds (YAML).")] = "monitor.yaml",
    as_of: Annotated[
        str | None, typer.Option(help="The monitor's clock, ISO time (UTC if no zone) [default: now].")
    ] = None,
    out: Annotated[str | None, typer.Option(help="Report directory [default: $TALA_DATA_ROOT/monitoring].")] = None,
) -> None:
    """Drift, estimated and realized performance, live uplift; each check PASS or ALERT."""
    if ctx.invoked_subcommand is not None:
        return
    from tala_ray.monitoring.alerts import exit_code
    from tala_ray.monitoring.config import load_monitor_config
    from tala_ray.monitoring.monitor import run_monitor
    from tala_ray.monitoring.outputs import write_outputs
    from tala_ray.serving.args import default_log_uri

    if reference is None:
        raise UserError("--reference: required (build one with `tala-ray monitor reference`)")
    settings = get_settings()
    rules = load_monitor_config(config)
    result = run_monitor(log or default_log_uri(), reference, outcomes, as_of, rules)
    report = write_outputs(result, rules, out or f"{settings.data_root}/monitoring")
    head = report.headline
    where = f" in {head.where}" if head.where else ""
    models = f" ({' and '.join(head.models)}{where})" if head.models else ""
    typer.echo(f"{head.status}{models}: {head.text}")
    for check in report.checks:
        typer.echo(check.line())
    typer.echo(f"report: {report.files['html']} (also {report.files['markdown']}, {report.files['json']})")
    typer.echo(f"metrics: {report.files['metrics']}")
    raise typer.Exit(exit_code(report.checks))


@app.command("reference")
def build_reference(
    features: Annotated[str, typer.Option(help="Feature table of the training period (`tala-ray features build`).")],
    credit: Annotated[str, typer.Option(help="Credit model NAME[@VERSION|@ALIAS] [default alias: champion].")],
    uplift: Annotated[str, typer.Option(help="Uplift model NAME[@VERSION|@ALIAS] [default alias: champion].")],
    out: Annotated[str, typer.Option(help="Reference file to write (Parquet).")],
    registry: Annotated[str | None, typer.Option(help="Registry URI [default: $TALA_REGISTRY_URI].")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only applications at or after this ISO time (data the models did not fit).")
    ] = None,
    rows: Annotated[int, typer.Option(min=100, help="At most this many rows (a random sample).")] = 20_000,
    seed: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """Score a feature table with the models monitored: the reference live traffic is compared with."""
    from tala_ray.core.registry import parse_model_ref
    from tala_ray.features.definitions import feature_set_version
    from tala_ray.features.table import read_feature_table
    from tala_ray.models.predictors import load_predictor
    from tala_ray.monitoring.monitor import as_utc
    from tala_ray.monitoring.reference import score_reference, write_reference

    uri = registry or get_settings().registry_uri
    table = read_feature_table(features)
    if since is not None:
        table = table[table["application_time"] >= as_utc(since)]
    if table.empty:
        raise UserError(f"features: no applications in {features!r}{f' since {since}' if since else ''}")
    predictors = {}
    for kind, ref in (("credit", credit), ("uplift", uplift)):
        name, version = parse_model_ref(ref)
        predictors[kind] = load_predictor(uri, name, version or "champion", feature_set_version(), kind=kind)
    frame = score_reference(table, predictors["credit"], predictors["uplift"], rows, seed)
    write_reference(frame, out)
    typer.echo(f"reference written to {out}: {len(frame):,} rows scored by {credit} and {uplift}")
