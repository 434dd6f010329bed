"""`tala-ray serve CONFIG`: run the decision service locally from a Serve config file."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

# A group with no subcommands, so that `tala-ray serve CONFIG --options` reads like a single command.
app = typer.Typer(context_settings={"allow_interspersed_args": True}, subcommand_metavar="")


@app.callback(invoke_without_command=True)
def serve(
    config: Annotated[str, typer.Argument(help="Serve config file.")] = "serve_configs/credit_decision.yaml",
    registry_uri: Annotated[str | None, typer.Option(help="Override args.registry_uri.")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address; default: start a local cluster.")] = None,
    block: Annotated[
        bool, typer.Option(help="Keep serving until Ctrl-C or SIGTERM (then shut down gracefully).")
    ] = True,
    haproxy: Annotated[
        bool,
        typer.Option(
            help="Serve's fast ingress (HAProxy + direct ingress) on the local cluster; "
            "see docs/serving-performance.md."
        ),
    ] = False,
) -> None:
    """Deploy the decision service from CONFIG (the file `serve run`/`serve deploy` take).

    Model aliases are pinned to the versions they point at now, so running this again after a
    promotion swaps the new model in (with --address of a running cluster and --no-block it is
    `serve deploy` plus that pinning).
    """
    from tala_ray.core.ray_runtime import ensure_ray
    from tala_ray.serving.launch import deploy, load_serve_config, use_haproxy_environment

    overrides = {"registry_uri": registry_uri} if registry_uri else None
    parsed = load_serve_config(config, overrides, pin_versions=True)  # fail on a bad file before starting Ray
    if haproxy:
        for note in use_haproxy_environment(address):
            typer.echo(f"note: {note}", err=True)
    ensure_ray(address)
    deploy(parsed)
    http = parsed.http_options
    typer.echo(f"decision service running at http://{http.host}:{http.port}/ (OpenAPI at /docs)")
    if not block:
        return
    from ray import serve as ray_serve

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    typer.echo("shutting down gracefully (the prediction log is flushed)")
    ray_serve.shutdown()
