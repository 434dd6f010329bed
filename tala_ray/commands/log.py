"""`tala-ray log read`: the most recent decisions in the prediction log."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)

SUMMARY_COLUMNS = [
    "logged_at",
    "request_id",
    "decision",
    "limit",
    "intervention",
    "default_probability",
    "uplift",
    "expected_profit",
    "credit_model_version",
    "credit_role",
    "uplift_model_version",
    "latency_ms",
]


@app.command()
def read(
    uri: Annotated[
        str | None, typer.Option(help="Prediction log root [default: $TALA_DATA_ROOT/prediction_log].")
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="How many of the most recent rows to show.")] = 20,
    since: Annotated[
        str | None, typer.Option(help="Only rows logged at or after this ISO time (UTC if no zone).")
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Every column, one JSON object a line (features included).")
    ] = False,
) -> None:
    """Show the most recent logged decisions, newest first."""
    import pandas as pd

    from tala_ray.core.errors import UserError
    from tala_ray.monitoring.prediction_log import read_prediction_log
    from tala_ray.serving.args import default_log_uri

    try:
        since_time = pd.Timestamp(since) if since else None
    except ValueError as error:
        raise UserError(f"since: not an ISO date/time: {since!r}") from error
    rows = read_prediction_log(uri or default_log_uri(), limit=limit, since=since_time)
    if rows.empty:
        typer.echo("no logged decisions")
        return
    if full:
        typer.echo(rows.to_json(orient="records", lines=True, date_format="iso").rstrip("\n"))
        return
    columns = [c for c in SUMMARY_COLUMNS if c in rows.columns] or list(rows.columns)
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.float_format", "{:.4f}".format):
        typer.echo(rows[columns].to_string(index=False))
