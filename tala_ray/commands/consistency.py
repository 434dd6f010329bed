"""`tala-ray consistency`: the prediction log's served features against the offline recomputation."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer()


@app.callback(invoke_without_command=True)
def consistency(
    log: Annotated[str, typer.Option("--log", help="Prediction log root of the service.")],
    world: Annotated[str, typer.Option("--world", help="The world whose raw tables the stream replayed.")],
    show: Annotated[int, typer.Option(min=0, help="Features listed, worst first.")] = 10,
    json_out: Annotated[bool, typer.Option("--json", help="The whole report as JSON.")] = False,
) -> None:
    """Recompute every logged decision by id's features offline at its logged time; mismatch per feature."""
    from tala_ray.monitoring.consistency import log_consistency

    report = log_consistency(log, world)
    if json_out:
        typer.echo(report.model_dump_json(indent=2))
        return
    typer.echo(f"decisions {report.decisions}  mismatch rate {report.mismatch_rate:.6f}")
    typer.echo(f"{'feature':<36} {'mismatch':>9} {'missing':>8} {'extra':>6} {'smape':>9}")
    for f in report.worst(show):
        typer.echo(f"{f.feature:<36} {f.mismatch_rate:>9.4f} {f.missing:>8} {f.extra:>6} {f.smape:>9.5f}")
