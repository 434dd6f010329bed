"""`tala-ray features ...`: list the feature definitions; build a feature table with Ray Data."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from tala_ray.core.settings import get_settings

app = typer.Typer(no_args_is_help=True)


class EngineChoice(StrEnum):
    ray = "ray"
    local = "local"


@app.command("list")
def list_features() -> None:
    """Print every feature: name, dtype and description, and the feature-set version."""
    from tala_ray.features.definitions import FEATURES, feature_set_version

    width = max(len(f.name) for f in FEATURES)
    for feature in FEATURES:
        typer.echo(f"{feature.name:<{width}}  {feature.dtype:<7}  {feature.description}")
    typer.echo(f"\n{len(FEATURES)} features, feature-set version {feature_set_version()}")


@app.command()
def build(
    world: Annotated[
        str | None, typer.Option(help="Raw tables: directory or URI [default: $TALA_DATA_ROOT/world].")
    ] = None,
    out: Annotated[
        str | None, typer.Option(help="Output directory or URI [default: $TALA_DATA_ROOT/features].")
    ] = None,
    engine: Annotated[
        EngineChoice, typer.Option(help="ray (Ray Data pipeline) or local (one process, for comparison).")
    ] = EngineChoice.ray,
    buckets: Annotated[
        int | None, typer.Option(min=1, help="Applicant buckets for the shuffle [default: 1 per 25k].")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output directory.")] = False,
    address: Annotated[str | None, typer.Option(help="Ray cluster address; default: start a local cluster.")] = None,
) -> None:
    """Build the point-in-time feature table (partitioned Parquet + manifest) from a world's raw tables."""
    from tala_ray.features.build import build_feature_table, check_inputs

    settings = get_settings()
    world, out = world or f"{settings.data_root}/world", out or f"{settings.data_root}/features"
    check_inputs(world)  # fail on a bad input before starting Ray
    if engine is EngineChoice.ray:
        from tala_ray.core.ray_runtime import ensure_ray

        ensure_ray(address)
    manifest = build_feature_table(world, out, engine=engine.value, overwrite=overwrite, num_buckets=buckets)
    quarantined = ", ".join(f"{t}.{r}={n}" for t, reasons in manifest.quarantined.items() for r, n in reasons.items())
    typer.echo(
        f"feature table written to {out} in {manifest.elapsed_seconds:.1f}s: {manifest.rows_out:,} rows, "
        f"{len(manifest.features)} features, version {manifest.feature_set_version}"
    )
    typer.echo(f"quarantined: {quarantined or 'none'}")
