"""`tala-ray models ...`: list, show, promote and compare registered models."""

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


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version to point the alias at.")],
    alias: Annotated[str, typer.Option(help="champion or challenger.")] = "champion",
    registry: RegistryOption = None,
) -> None:
    """Point an alias (what serving loads) at a version."""
    store = _registry(registry)
    store.set_alias(name, alias, version)  # type: ignore[arg-type]  (validated inside)
    typer.echo(f"{name}@{alias} -> {version}")


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
