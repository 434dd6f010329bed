"""`tala-ray score`: the nightly batch scoring of a whole book through Ray Data.

The book is a feature table (`tala-ray features build`); the models and the policy are the
decision service's, read from its Serve config (`args`, and a `user_config` set on the
DecisionPolicy, CreditChampion or UpliftModel deployment wins, as it does in Serve). The driver
pins each model alias to its version, loading and verifying each once before Ray starts work, so
every actor decides with the same artifacts: a missing model, a model trained on another feature
set than the table's, or a bad path fails here in one line. Then Ray Data reads the table,
`map_batches` decides each batch on an actor pool (`jobs.scorer.BookScorer`: each actor loads
and verifies the models once) and writes `<out>/decisions/*.parquet` (`scorer.DECISIONS`), and
the job writes `<out>/manifest.json`. Paths and URIs are pyarrow filesystems (`core.storage`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.dataset as pads
from pyarrow import fs as pafs
from pydantic import BaseModel, ConfigDict, Field

from tala_ray.core.errors import UserError
from tala_ray.core.signing import key_environment
from tala_ray.core.storage import join_path, read_model, resolve_filesystem, write_model
from tala_ray.data.generate import check_output
from tala_ray.features.definitions import feature_set_version
from tala_ray.features.table import TABLE_DIR, read_feature_manifest
from tala_ray.jobs.scorer import BookScorer, PinnedModel, ScoringSetup, input_columns, load_pinned
from tala_ray.models.predictors import CreditPredictor, UpliftPredictor
from tala_ray.policy.decision import PolicyParams
from tala_ray.serving.args import AppArgs, ModelRef
from tala_ray.serving.launch import BUILDER_IMPORT_PATH, load_serve_config
from tala_ray.serving.model_slot import ModelConfig

log = logging.getLogger(__name__)

DECISIONS_DIR = "decisions"
MANIFEST = "manifest.json"
ACTOR_CPUS = 0.5  # an actor per CPU still leaves room for Ray Data's file listing, reads and writes (1 CPU each)


class ScoreSpec(BaseModel):
    """What to score, with which models and policy, and how."""

    model_config = ConfigDict(extra="forbid")

    features: str = Field(description="The feature table (directory or URI) of the book.")
    out: str = Field(description="Where the decisions and their manifest go (directory or URI).")
    registry_uri: str
    credit_model: ModelRef
    uplift_model: ModelRef
    policy: PolicyParams
    expected_feature_set_version: str | None = Field(
        None, description="The feature set the service expects; default: the code's current version."
    )
    batch_size: int = Field(8192, ge=1, description="Rows a Ray Data batch decides at once.")
    actors: int | None = Field(None, ge=1, description="Actors of the pool; default: one per CPU of the cluster.")


class ScoreManifest(BaseModel):
    """What a scoring run decided, with what, from what."""

    model_config = ConfigDict(extra="forbid")

    features: str
    feature_set_version: str
    credit_model: PinnedModel
    uplift_model: PinnedModel
    policy: PolicyParams
    rows: int
    decisions: dict[str, int]
    actors: int
    elapsed_seconds: float
    decisions_per_second: float


def read_score_manifest(out: str) -> ScoreManifest:
    """The manifest of a scoring run's output."""
    return read_model(out, MANIFEST, ScoreManifest, f"no scoring output at {out!r}: {MANIFEST} is missing")


def spec_from_serve_config(config: str, features: str, out: str, **overrides: Any) -> ScoreSpec:
    """The service's registry, champion models and policy from a Serve config file, as a ScoreSpec
    (`overrides`: registry_uri, batch_size, actors)."""
    registry = {"registry_uri": overrides.pop("registry_uri")} if overrides.get("registry_uri") else None
    parsed = load_serve_config(config, registry)
    ours = [app for app in parsed.applications if app.import_path == BUILDER_IMPORT_PATH]
    if not ours:
        raise UserError(f"serve config {config!r}: no application built by {BUILDER_IMPORT_PATH}")
    args = AppArgs.model_validate(ours[0].args)
    live = {d.name: d.user_config for d in ours[0].deployments or [] if getattr(d, "user_config", None)}
    models = {"credit_model": ("CreditChampion", args.credit_model), "uplift_model": ("UpliftModel", args.uplift_model)}
    refs = {field: _live_ref(live.get(name), ref) for field, (name, ref) in models.items()}
    policy = PolicyParams.model_validate(live["DecisionPolicy"]) if "DecisionPolicy" in live else args.policy
    return ScoreSpec(
        features=features,
        out=out,
        registry_uri=args.registry_uri,
        policy=policy,
        expected_feature_set_version=args.expected_feature_set_version,
        **refs,
        **overrides,
    )


def _live_ref(user_config: dict[str, Any] | None, ref: ModelRef) -> ModelRef:
    """A model deployment's `user_config` names its exact model; without one the args' reference holds."""
    if user_config is None:
        return ref
    config = ModelConfig.model_validate(user_config)
    return ModelRef(name=config.name, ref=config.version)


def _pin(spec: ScoreSpec, feature_set_version: str) -> tuple[ScoringSetup, CreditPredictor, UpliftPredictor]:
    """Each model's exact version, loaded and verified once against the table's feature set."""
    pinned, predictors = {}, {}
    for kind, ref in (("credit", spec.credit_model), ("uplift", spec.uplift_model)):
        model = PinnedModel(
            registry_uri=spec.registry_uri, name=ref.name, version=ref.ref, feature_set_version=feature_set_version
        )
        predictors[kind] = load_pinned(model, kind)
        pinned[kind] = model.model_copy(update={"version": str(predictors[kind].version)})
    setup = ScoringSetup(credit=pinned["credit"], uplift=pinned["uplift"], policy=spec.policy)
    return setup, predictors["credit"], predictors["uplift"]


def _filesystem(location: str, what: str) -> tuple[Any, str]:
    """The filesystem of a path or URI; one that pyarrow cannot open is a UserError naming the option."""
    try:
        return resolve_filesystem(location)
    except (OSError, pa.ArrowException, ValueError) as error:
        raise UserError(f"{what} {location!r}: cannot open it ({error})") from None


class Book(NamedTuple):
    """A checked book: the actors' setup and the table's columns to read."""

    setup: ScoringSetup
    columns: list[str]


def check_book(spec: ScoreSpec, overwrite: bool) -> Book:
    """Everything that can fail before Ray works: the output, the table, its feature set, the models."""
    _filesystem(spec.out, "--out")
    check_output(spec.out, overwrite)
    _filesystem(spec.features, "--features")
    table = read_feature_manifest(spec.features)
    expected = spec.expected_feature_set_version or feature_set_version()
    if table.feature_set_version != expected:
        raise UserError(
            f"--features {spec.features!r}: built with feature set {table.feature_set_version!r}, but the service "
            f"computes {expected!r} (rebuild it with `tala-ray features build`)"
        )
    setup, credit, uplift = _pin(spec, expected)
    columns = input_columns(credit, uplift)
    missing = sorted(set(columns) - set(_table_columns(spec.features)))
    if missing:
        raise UserError(
            f"--features {spec.features!r}: the table lacks columns {missing} that scoring needs "
            "(rebuild it with `tala-ray features build`)"
        )
    return Book(setup, columns)


def _table_columns(features: str) -> list[str]:
    filesystem, root = resolve_filesystem(features)
    dataset = pads.dataset(join_path(root, TABLE_DIR), filesystem=filesystem, format="parquet", partitioning="hive")
    return dataset.schema.names


def _actor_count(spec: ScoreSpec) -> int:
    import ray

    return spec.actors or max(1, int(ray.cluster_resources().get("CPU", 1)))


def _decision_counts(out: str) -> tuple[int, dict[str, int]]:
    filesystem, root = resolve_filesystem(out)
    decided = pads.dataset(join_path(root, DECISIONS_DIR), filesystem=filesystem, format="parquet")
    counts = Counter(decided.to_table(columns=["decision"]).column("decision").to_pylist())
    return sum(counts.values()), dict(sorted(counts.items()))


def score_book(spec: ScoreSpec, overwrite: bool = False) -> ScoreManifest:
    """Decide every application of the book on the current Ray cluster; write the decisions and manifest."""
    import ray

    setup, columns = check_book(spec, overwrite)
    out_fs, out_root = resolve_filesystem(spec.out)
    if out_fs.get_file_info(out_root).type == pafs.FileType.Directory:
        out_fs.delete_dir_contents(out_root)
    started = time.perf_counter()
    actors = _actor_count(spec)
    in_fs, in_root = resolve_filesystem(spec.features)
    # partitioning=None: the cohort=<c> directories are not needed as a column
    table = ray.data.read_parquet(join_path(in_root, TABLE_DIR), filesystem=in_fs, columns=columns, partitioning=None)
    # blocks of one batch (a read block holds up to 128 MiB: a whole small book), so every actor gets work
    decisions = table.repartition(target_num_rows_per_block=spec.batch_size).map_batches(
        BookScorer,
        fn_constructor_kwargs={"setup": setup.model_dump(mode="json")},
        batch_size=spec.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=ACTOR_CPUS,
        runtime_env={"env_vars": key_environment()},  # the actors verify signatures with the driver's keys
    )
    decisions.write_parquet(join_path(out_root, DECISIONS_DIR), filesystem=out_fs)
    elapsed = time.perf_counter() - started
    log.debug("scoring:\n%s", decisions.stats())
    decided, counts = _decision_counts(spec.out)
    manifest = ScoreManifest(
        features=spec.features,
        feature_set_version=setup.credit.feature_set_version,
        credit_model=setup.credit,
        uplift_model=setup.uplift,
        policy=spec.policy,
        rows=decided,
        decisions=counts,
        actors=actors,
        elapsed_seconds=round(elapsed, 3),
        decisions_per_second=round(decided / elapsed, 1) if elapsed > 0 else 0.0,
    )
    write_model(spec.out, MANIFEST, manifest)
    return manifest
