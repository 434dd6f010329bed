"""`tala-ray stream ...`: replay a world into the event stream, consume it into the online store, bootstrap
the store from the offline tables, show the stream's status, stop the embedded server.

Without `--url` (or TALA_STREAM_URL) every command uses the embedded Valkey server of TALA_STREAM_DIR,
starting it when it is not running; it keeps running after the command (stop it with `stop-server`).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Annotated

import typer

from tala_ray.core.errors import UserError

app = typer.Typer(no_args_is_help=True)

Url = Annotated[str | None, typer.Option(help="Stream server (redis://host:port/db) [default: $TALA_STREAM_URL].")]
Address = Annotated[str | None, typer.Option(help="Ray cluster address; default: start a local cluster.")]


def _time_ms(option: str, value: str | None) -> int | None:
    """Epoch ms of an ISO-8601 time given to `option` (naive times are UTC)."""
    if value is None:
        return None
    from tala_ray.features.timeutil import datetime_ms

    try:
        return datetime_ms(datetime.fromisoformat(value))
    except ValueError:
        raise UserError(f"{option}: not an ISO-8601 time: {value[:40]!r}") from None


def _open(url: str | None, partitions: int | None = None):
    from tala_ray.streaming.server import stream_url
    from tala_ray.streaming.topic import open_topic

    return open_topic(stream_url(url), partitions)


@app.command()
def publish(
    world: Annotated[str | None, typer.Option(help="World directory or URI [default: $TALA_DATA_ROOT/world].")] = None,
    rate: Annotated[
        float | None, typer.Option(help="Records per second at most [default: as fast as possible].")
    ] = None,
    speedup: Annotated[float | None, typer.Option(help="Replay event time this many times faster than real.")] = None,
    since: Annotated[str | None, typer.Option(help="Only records at or after this ISO-8601 event time.")] = None,
    until: Annotated[str | None, typer.Option(help="Only records before this ISO-8601 event time.")] = None,
    partitions: Annotated[int | None, typer.Option(help="Partitions of the topic if it is new [default: 4].")] = None,
    url: Url = None,
) -> None:
    """Replay a world's raw records (applicants, events, loans) into the topic in event-time order."""
    from tala_ray.core.settings import get_settings
    from tala_ray.streaming.publisher import PublishSpec, ordered_records, publish, read_world_tables

    spec = PublishSpec(
        rate=rate, speedup=speedup, since_ms=_time_ms("--since", since), until_ms=_time_ms("--until", until)
    )
    if partitions is not None and partitions < 1:
        raise UserError(f"--partitions: must be at least 1, not {partitions}")
    tables = read_world_tables(world or f"{get_settings().data_root}/world")
    client, config = _open(url, partitions)
    report = publish(client, config, ordered_records(tables, spec.since_ms, spec.until_ms), spec)
    counts = ", ".join(f"{kind}={n:,}" for kind, n in sorted(report.records.items()))
    typer.echo(
        f"published {counts} to {config.topic!r} ({config.partitions} partitions) in {report.elapsed_s:.1f}s: "
        f"{report.records_per_s:,.0f} records/s, {report.retries} retried chunks"
    )


@app.command()
def status(
    interval: Annotated[float, typer.Option(help="Seconds over which the apply rate is measured.")] = 1.0,
    url: Url = None,
) -> None:
    """Print the lag per partition and consumer, the records applied per second and the quarantined ones."""
    from tala_ray.streaming.status import format_status, stream_status

    if not interval > 0:
        raise UserError(f"--interval: must be positive, not {interval}")
    client, config = _open(url)
    typer.echo(format_status(stream_status(client, config, interval)))


@app.command()
def consume(
    minimum: Annotated[int, typer.Option("--min", help="Consumers kept without a backlog.")] = 1,
    maximum: Annotated[int, typer.Option("--max", help="Consumers at most.")] = 4,
    backlog_per_consumer: Annotated[int, typer.Option(help="Backlog that justifies one more consumer.")] = 20_000,
    until_drained: Annotated[bool, typer.Option(help="Stop once the backlog is empty.")] = False,
    url: Url = None,
    address: Address = None,
) -> None:
    """Run the consumer group (Ray actors scaled with the backlog) until interrupted or drained."""
    from tala_ray.core.ray_runtime import ensure_ray
    from tala_ray.streaming.consumer import ConsumerSpec
    from tala_ray.streaming.supervisor import ScalingSpec, Supervisor, group_backlog

    scaling = ScalingSpec(minimum=minimum, maximum=maximum, backlog_per_consumer=backlog_per_consumer)
    client, config = _open(url)
    ensure_ray(address)
    supervisor = Supervisor(config, ConsumerSpec(), scaling)
    stop = threading.Event()
    try:
        while not stop.is_set():
            running = supervisor.tick()
            backlog = group_backlog(client, config)
            typer.echo(f"consumers {running}, backlog {backlog:,}")
            if until_drained and backlog == 0:
                break
            stop.wait(2.0)
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.shutdown()


@app.command()
def bootstrap(
    until: Annotated[str, typer.Option(help="The offline tables' cut: records before this ISO-8601 time are loaded.")],
    world: Annotated[str | None, typer.Option(help="World directory or URI [default: $TALA_DATA_ROOT/world].")] = None,
    url: Url = None,
    address: Address = None,
) -> None:
    """Bulk-load the online store from a world's raw tables (Ray Data), then resume the group after the cut."""
    from tala_ray.core.ray_runtime import ensure_ray
    from tala_ray.core.settings import get_settings
    from tala_ray.streaming.bootstrap import bootstrap as run_bootstrap
    from tala_ray.streaming.publisher import read_world_tables

    until_ms = _time_ms("--until", until)
    world = world or f"{get_settings().data_root}/world"
    read_world_tables(world)  # check the tables before starting Ray
    _, config = _open(url)
    ensure_ray(address)
    report = run_bootstrap(world, config, until_ms)
    counts = ", ".join(f"{kind}={n:,}" for kind, n in sorted(report.loaded.items()))
    typer.echo(f"loaded {counts} ({report.quarantined:,} quarantined); the group resumes at {report.offsets}")


@app.command("stop-server")
def stop_server() -> None:
    """Stop the embedded stream server of TALA_STREAM_DIR (by its pid), if it runs."""
    from tala_ray.core.settings import get_settings
    from tala_ray.streaming.server import running_server
    from tala_ray.streaming.server import stop_server as stop

    info = running_server(get_settings().stream_dir)
    if info is None:
        typer.echo("no embedded stream server is running")
        return
    stop(info)
    typer.echo(f"stopped the embedded stream server (pid {info.pid}, port {info.port})")
