"""`tala-ray models ...`: list, show, verify, promote, compare and sign registered models."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tala_ray.core.settings import get_settings

app = typer.Typer(no_args_is_help=True)

RegistryOption = Annotated[str | None, typer.Option("--registry", help="Registry URI [default: $TALA_REGISTRY_URI].")]


def _registry(uri: str | None):  # noqa: ANN202 - the import stays inside (fast --help)
    from tala_ray.core.registry import Registry

    return Registry(uri or get_settings().registry_uri)


@app.command("list")
def list_models(registry: RegistryOption = None) -> None:
    """Every model with its versions, families, test AUC and aliases."""
    store = _registry(registry)
    names = store.names()
    if not names:
        typer.echo(f"no models in {store.uri}")
    for name in names:
        aliases = store.aliases(name)
        for version in store.versions(name):
            manifest = store.manifest(name, version)
            tags = ",".join(a for a, v in sorted(aliases.items()) if v == version)
            auc = manifest.metrics.get("auc")
            typer.echo(
                f"{name}@{version}\t{manifest.kind}/{manifest.family}\t"
                f"auc={'-' if auc is None else f'{auc:.4f}'}\t{manifest.created_at}\t{tags}"
            )


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")], registry: RegistryOption = None
) -> None:
    """The manifest of one version (latest by default): lineage, metrics, files and their sha256."""
    from tala_ray.core.registry import parse_model_ref

    store = _registry(registry)
    name, version_ref = parse_model_ref(ref)
    manifest = store.manifest(name, store.resolve(name, version_ref))
    payload = manifest.model_dump(mode="json") | {"aliases": store.aliases(name)}
    typer.echo(json.dumps(payload, indent=2, sort_keys=True))


def _verified(store, name: str, ref: str | None) -> str:  # noqa: ANN001 - a Registry (imported inside)
    """Load the version as serving would (signature, checksums, probe rows); a refused one is a UserError.
    Returns the one-line verdict."""
    from tala_ray.models.predictors import load_predictor

    version = load_predictor(store.uri, name, ref=store.resolve(name, ref)).version
    manifest = store.verified_manifest(name, version)
    return (
        f"{name}@{version}: ok ({manifest.kind}/{manifest.family}, manifest signed by key "
        f"{store.signer(name, version)}, its model files match it, probe rows scored)"
    )


@app.command()
def verify(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")], registry: RegistryOption = None
) -> None:
    """Load one version as serving would: its manifest's signature, every file's sha256, the probe rows."""
    from tala_ray.core.registry import parse_model_ref

    store = _registry(registry)
    typer.echo(_verified(store, *parse_model_ref(ref)))


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version to point the alias at.")],
    alias: Annotated[str, typer.Option(help="champion or challenger.")] = "champion",
    registry: RegistryOption = None,
) -> None:
    """Point an alias (what serving loads) at a version, once it loads as serving would (`verify`)."""
    from tala_ray.core.registry import check_alias

    store = _registry(registry)
    check_alias(alias)
    _verified(store, name, version)
    store.set_alias(name, alias, version)  # type: ignore[arg-type]  (validated inside)
    typer.echo(f"{name}@{alias} -> {version}")


@app.command()
def sign(
    refs: Annotated[list[str] | None, typer.Argument(help="NAME@VERSION (or NAME: its latest version).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every version of every model in the registry.")] = False,
    registry: RegistryOption = None,
) -> None:
    """Sign versions registered before signing, with the training key ($TALA_SIGNING_KEY).

    Only for artifacts you trust: the signature vouches for every file the manifest lists, and an
    uplift model's estimator.pkl runs code when loaded. Each version's files are checked against its
    manifest first.
    """
    from tala_ray.core.errors import UserError
    from tala_ray.core.registry import parse_model_ref

    store = _registry(registry)
    if every == bool(refs):
        raise UserError("models sign: give NAME@VERSION references or --all (one of them)")
    if every:
        targets = [(name, version) for name in store.names() for version in store.versions(name)]
    else:
        targets = [(name, store.resolve(name, ref)) for name, ref in map(parse_model_ref, refs or [])]
    for name, version in targets:
        typer.echo(f"{name}@{version}: manifest signed by key {store.sign(name, version)}")


@app.command()
def compare(
    first: Annotated[str, typer.Argument(help="NAME@VERSION (or alias).")],
    second: Annotated[str, typer.Argument(help="NAME@VERSION (or alias).")],
    registry: RegistryOption = None,
) -> None:
    """Test metrics and lineage of two versions side by side."""
    from tala_ray.core.registry import parse_model_ref

    store = _registry(registry)
    manifests = []
    for ref in (first, second):
        name, version_ref = parse_model_ref(ref)
        manifests.append(store.manifest(name, store.resolve(name, version_ref)))
    a, b = manifests
    rows = [("", f"{a.name}@{a.version}", f"{b.name}@{b.version}"), ("family", a.family, b.family)]
    for metric in sorted(set(a.metrics) | set(b.metrics)):
        rows.append((metric, _fmt(a.metrics.get(metric)), _fmt(b.metrics.get(metric))))
    for key in ("baseline_logistic_auc", "best_possible_auc", "gap_to_best_possible_auc"):
        rows.append((key, _fmt(a.extra.get(key)), _fmt(b.extra.get(key))))
    rows += [
        ("feature_set_version", str(a.feature_set_version), str(b.feature_set_version)),
        ("data_content_hash", str(a.data_content_hash)[:12], str(b.data_content_hash)[:12]),
        ("git_commit", a.git_commit[:12], b.git_commit[:12]),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
