"""`tala-ray score --features F --out O`: re-score a whole book with the service's models and policy."""

from __future__ import annotations

from typing import Annotated

import typer

# A group with no subcommands, so that `tala-ray score --options` reads like a single command.
app = typer.Typer(context_settings={"allow_interspersed_args": True}, subcommand_metavar="")


@app.callback(invoke_without_command=True)
def score(
    features: Annotated[str, typer.Option(help="The book's feature table (`tala-ray features build`): path or URI.")],
    out: Annotated[str, typer.Option(help="Output directory or URI: decisions/*.parquet and manifest.json.")],
    serve_config: Annotated[
        str, typer.Option(help="The service's Serve config: its registry, champion models and policy.")
    ] = "serve_configs/credit_decision.yaml",
    registry_uri: Annotated[str | None, typer.Option(help="Override the config's args.registry_uri.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows an actor decides at once.")] = 8192,
    actors: Annotated[int | None, typer.Option(min=1, help="Scoring actors [default: one per CPU].")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output directory.")] = False,
    address: Annotated[str | None, typer.Option(help="Ray cluster address; default: start a local cluster.")] = None,
) -> None:
    """Decide every application of a feature table as the decision service would (default probability,
    uplift, decision, limit, reason codes, model versions), on an actor pool of Ray Data."""
    from tala_ray.core.ray_runtime import ensure_ray
    from tala_ray.jobs.score import check_book, score_book, spec_from_serve_config

    spec = spec_from_serve_config(
        serve_config, features, out, registry_uri=registry_uri, batch_size=batch_size, actors=actors
    )
    check_book(spec, overwrite)  # fail on a bad input, path or model before starting Ray
    ensure_ray(address)
    manifest = score_book(spec, overwrite=overwrite)
    counts = ", ".join(f"{decision} {count:,}" for decision, count in manifest.decisions.items())
    typer.echo(
        f"{manifest.rows:,} applications decided in {manifest.elapsed_seconds:.1f}s "
        f"({manifest.decisions_per_second:,.0f}/s, {manifest.actors} actors): {counts}"
    )
    typer.echo(
        f"models {manifest.credit_model.name}@{manifest.credit_model.version}, "
        f"{manifest.uplift_model.name}@{manifest.uplift_model.version}; written to {out}"
    )
