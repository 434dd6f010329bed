"""`tala-ray keys ...`: the Ed25519 key pair that signs registry manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)


@app.command()
def init(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Directory for signing.key and signing.pub [default: ~/.tala-ray/keys]."),
    ] = None,
) -> None:
    """Make a new key pair (never over an existing one): the private key (mode 0600) for the training
    job, the public key for serving and every loader."""
    from tala_ray.core.signing import generate_key_pair, load_trusted_keys, local_keys_dir

    private, public = generate_key_pair(directory or local_keys_dir())
    (key_id,) = load_trusted_keys([public]).keys
    typer.echo(f"key {key_id}: private {private} (training job only), public {public}")
    if directory is not None:
        typer.echo(f"export TALA_SIGNING_KEY={private.absolute()} TALA_TRUSTED_KEYS={public.absolute()}")
