"""`tala-ray data ...`: the synthetic world (with a live period and a planted scenario), outcomes
released for the decisions served, profiles of dataset specs."""

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
    live_applicants: Annotated[
        int, typer.Option(min=0, help="Applications in a live period after the training period (0: none).")
    ] = 0,
    live_days: Annotated[int, typer.Option(min=1, help="Length of the live period in days.")] = 56,
    scenario: Annotated[
        str, typer.Option(help="The change planted in the live period: none, income_shock, new_channel, betting_wave.")
    ] = "none",
    onset_day: Annotated[int, typer.Option(min=0, help="Day of the live period the change starts.")] = 28,
    shock_country: Annotated[str, typer.Option(help="The country an income shock hits.")] = "KE",
    partitioned: Annotated[
        bool, typer.Option(help="Write every table partitioned by applicant (applicant_part=<chunk>/ directories).")
    ] = False,
    arms: Annotated[
        str,
        typer.Option(
            help="The experiment's intervention arms, comma-separated (codes 1, 2, ...): "
            "reminder, reminder_ontime_discount."
        ),
    ] = "reminder_ontime_discount",
    days_late: Annotated[
        bool, typer.Option(help="Record days_late, a continuous outcome (days past due until repaid), and its truth.")
    ] = False,
    address: Address = None,
) -> None:
    """Generate the synthetic lending world as Parquet tables plus a manifest (and a live period under live/)."""
    from tala_ray.core.ray_runtime import ensure_ray
    from tala_ray.data.design import Design
    from tala_ray.data.generate import WorldSpec, check_output, generate_world
    from tala_ray.data.scenarios import LiveSpec

    out = out or f"{get_settings().data_root}/world"
    live = LiveSpec(
        applicants=live_applicants,
        days=live_days,
        scenario=scenario,
        onset_day=onset_day,
        country=shock_country,
    )
    design = Design(arms=tuple(arm.strip() for arm in arms.split(",")), days_late=days_late)
    spec = WorldSpec(
        applicants=applicants, seed=seed, chunk_size=chunk_size, live=live, partitioned=partitioned, design=design
    )
    check_output(out, overwrite)  # fail before starting Ray
    ensure_ray(address)
    manifest = generate_world(spec, out, overwrite=overwrite)
    rows = ", ".join(f"{name}={t.rows:,}" for name, t in manifest.tables.items())
    typer.echo(f"world written to {out} in {manifest.elapsed_seconds:.1f}s: {rows}")
    typer.echo(f"content hash {manifest.content_hash}")
    if manifest.live is not None:
        record = manifest.live
        onset = "no change" if record.onset is None else f"from {record.onset:%Y-%m-%d}: {record.description}"
        typer.echo(f"live period {record.live_start:%Y-%m-%d} to {record.live_end:%Y-%m-%d}, {record.name}: {onset}")


@app.command()
def outcomes(
    world: Annotated[str, typer.Option(help="A world generated with a live period (--live-applicants).")],
    log: Annotated[str, typer.Option(help="Prediction log of the decisions served on its live applications.")],
    out: Annotated[str, typer.Option(help="Outcome files to write: release_day=YYYY-MM-DD/part-00000.parquet.")],
    late_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share delivered days late.")] = 0.03,
    duplicate_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share delivered twice.")] = 0.02,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the late and repeated deliveries.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output directory.")] = False,
) -> None:
    """Release the outcomes of the loans served (due date + days late), as the loan servicing system would."""
    import pyarrow.dataset as pads

    from tala_ray.core.errors import UserError
    from tala_ray.core.storage import join_path, resolve_filesystem
    from tala_ray.data.generate import LIVE_DIR
    from tala_ray.data.outcomes import Delivery, release_outcomes, write_release
    from tala_ray.monitoring.decisions import decisions_from_log
    from tala_ray.monitoring.prediction_log import read_prediction_log

    served = decisions_from_log(read_prediction_log(log)).frame[["application_id", "lent", "treated"]]
    filesystem, root = resolve_filesystem(world)
    location = join_path(root, LIVE_DIR, "potential_outcomes")
    try:
        potential = pads.dataset(location, filesystem=filesystem, format="parquet").to_table().to_pandas()
    except (FileNotFoundError, OSError) as error:
        raise UserError(f"world {world!r}: no live period (generate it with --live-applicants)") from error
    delivery = Delivery(late_share=late_share, duplicate_share=duplicate_share, seed=seed)
    written = write_release(release_outcomes(potential, served, delivery), out, overwrite=overwrite)
    first, last = (min(written), max(written)) if written else ("-", "-")
    typer.echo(f"{sum(written.values()):,} outcome records in {len(written)} release days ({first} to {last}) at {out}")


@app.command()
def profile(
    spec: Annotated[str, typer.Argument(help="Dataset spec YAML (CSV/Parquet source, target, features).")],
) -> None:
    """Print a profile of a dataset spec's data: rows, target rate, missing share and cardinality per column."""
    from tala_ray.data.dataset_spec import load_dataset, load_dataset_spec
    from tala_ray.data.profile import format_profile, profile_dataset

    typer.echo(format_profile(profile_dataset(load_dataset(load_dataset_spec(spec)))))
