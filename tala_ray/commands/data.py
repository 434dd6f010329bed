"""`tala-ray data ...`: the synthetic world; profiles of dataset specs."""

from __future__ import annotations

from typing import Annotated

import typer

from tala_ray.core.settings import get_settings

app = typer.Typer(no_args_is_help=True)

Address = Annotated[str | None, typer.Option(help="Ray cluster address; default: start a local cluster.")]


@app.command()
def generate(
    applicants: Annotated[int, typer.Option(min=1, help="Number of applicants (one application each).")] = 50_000,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; same seed and size give identical tables.")] = 7,
    out: Annotated[str | None, typer.Option(help="Output directory or URI [default: $TALA_DATA_ROOT/world].")] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Applicants per Ray task (bounds memory).")] = 20_000,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output directory.")] = False,
    address: Address = None,
) -> None:
    """Generate the synthetic lending world as Parquet tables plus a manifest."""
    from tala_ray.core.ray_runtime import ensure_ray
    from tala_ray.data.generate import WorldSpec, check_output, generate_world

    out = out or f"{get_settings().data_root}/world"
    spec = WorldSpec(applicants=applicants, seed=seed, chunk_size=chunk_size)
    check_output(out, overwrite)  # fail before starting Ray
    ensure_ray(address)
    manifest = generate_world(spec, out, overwrite=overwrite)
    rows = ", ".join(f"{name}={t.rows:,}" for name, t in manifest.tables.items())
    typer.echo(f"world written to {out} in {manifest.elapsed_seconds:.1f}s: {rows}")
    typer.echo(f"content hash {manifest.content_hash}")


@app.command()
def profile(
    spec: Annotated[str, typer.Argument(help="Dataset spec YAML (CSV/Parquet source, target, features).")],
) -> None:
    """Print a profile of a dataset spec's data: rows, target rate, missing share and cardinality per column."""
    from tala_ray.data.dataset_spec import load_dataset, load_dataset_spec
    from tala_ray.data.profile import format_profile, profile_dataset

    typer.echo(format_profile(profile_dataset(load_dataset(load_dataset_spec(spec)))))
