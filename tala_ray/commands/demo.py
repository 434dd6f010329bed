"""`tala-ray demo`: the main job end to end on a local Ray cluster started by the program."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(subcommand_metavar="")


@app.callback(invoke_without_command=True)
def demo(
    workdir: Annotated[Path, typer.Option(help="Where everything is written (replaced on each run).")] = Path(
        "runs/demo"
    ),
    applicants: Annotated[int, typer.Option(min=2_000, help="Applicants in the training world.")] = 20_000,
    credit_trials: Annotated[int, typer.Option(min=1, help="Ray Tune trials for the credit model.")] = 4,
    uplift_trials: Annotated[int, typer.Option(min=1, help="Ray Tune trials for the uplift model.")] = 2,
    traffic_seconds: Annotated[float, typer.Option(min=1, help="Seconds of single-decision traffic.")] = 15.0,
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port of the decision service (127.0.0.1).")] = 8000,
    keep_serving: Annotated[bool, typer.Option(help="Leave the endpoint up until Ctrl-C.")] = False,
    address: Annotated[str | None, typer.Option(help="Ray cluster address; default: start a local cluster.")] = None,
    haproxy: Annotated[
        bool,
        typer.Option(
            help="Serve through the shipped fast ingress (HAProxy + direct ingress; docs/serving-performance.md); "
            "--no-haproxy: Serve's Python proxy."
        ),
    ] = True,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Ray's, Serve's and Tune's logs live (else: WORKDIR/logs).")
    ] = False,
) -> None:
    """Generate a world, build features, tune credit and uplift models, promote, serve, send traffic, report."""
    from tala_ray.jobs.demo import DemoOptions, run_demo

    options = DemoOptions(
        workdir=workdir,
        applicants=applicants,
        credit_trials=credit_trials,
        uplift_trials=uplift_trials,
        traffic_seconds=traffic_seconds,
        port=port,
        keep_serving=keep_serving,
        address=address,
        haproxy=haproxy,
        verbose=verbose,
    )
    run_demo(options)
