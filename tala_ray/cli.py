"""The `tala-ray` command. Each command group lives in `tala_ray.commands.<group>`."""

from __future__ import annotations

import logging
import sys

import typer
from pydantic import ValidationError

from tala_ray.commands import consistency as consistency_command
from tala_ray.commands import data
from tala_ray.commands import demo as demo_command
from tala_ray.commands import features as features_command
from tala_ray.commands import keys as keys_command
from tala_ray.commands import log as log_command
from tala_ray.commands import models as models_command
from tala_ray.commands import monitor as monitor_command
from tala_ray.commands import score as score_command
from tala_ray.commands import serve as serve_command
from tala_ray.commands import stream as stream_command
from tala_ray.commands import tune as tune_command
from tala_ray.core.errors import UserError
from tala_ray.core.specs import validation_problems

app = typer.Typer(
    help="tala-ray: Ray-distributed credit and uplift experimentation and serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(data.app, name="data", help="Generate the synthetic lending world; profile a dataset spec.")
app.add_typer(
    features_command.app, name="features", help="List feature definitions; build a feature table with Ray Data."
)
app.add_typer(serve_command.app, name="serve", help="Run the decision service from a Serve config file.")
app.add_typer(
    score_command.app, name="score", help="Re-score a whole book with the service's models and policy (Ray Data)."
)
app.add_typer(
    stream_command.app,
    name="stream",
    help="Event stream and online store: publish a world, consume, bootstrap, status.",
)
app.add_typer(tune_command.app, name="tune", help="Run an experiment spec on Ray Tune and register the winner.")
app.add_typer(
    models_command.app, name="models", help="List, show, verify, promote, compare and sign registered models."
)
app.add_typer(keys_command.app, name="keys", help="Make the Ed25519 key pair that signs registry manifests.")
app.add_typer(log_command.app, name="log", help="Read the prediction log of the decision service.")
app.add_typer(
    monitor_command.app, name="monitor", help="Judge the prediction log and outcomes: drift, performance, live uplift."
)
app.add_typer(
    consistency_command.app,
    name="consistency",
    help="Online/offline consistency: the logged served features against the batch feature code.",
)
app.add_typer(
    demo_command.app, name="demo", help="The main job end to end: world, features, tuning, serving, traffic, report."
)


def main() -> None:
    """Console-script entry: logging is configured here and only here."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpcore"):  # one line per HTTP request would drown the progress lines
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        app()
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
    except ValidationError as error:
        typer.echo(f"error: {validation_problems(error)}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
