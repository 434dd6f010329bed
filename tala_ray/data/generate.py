"""`tala-ray data generate`: the synthetic world, simulated in chunks as parallel Ray tasks.

Each task simulates one fixed-size chunk and writes its part of every table straight to the
output filesystem, so memory is bounded by the chunk size and the driver only sees file hashes.
The chunk size, not the number of workers, fixes the random streams: output is deterministic.
A live period (`WorldSpec.live`, after the training period, with a planted scenario) is written the
same way under `live/`, with the live applications' potential outcomes; without one, the world is
exactly what it was before live periods existed.
With `WorldSpec.partitioned`, chunk k's file of every table lies under `applicant_part=k/` (hive
style): the directory names declare that all rows of an applicant are in one partition, so the
feature build reads partition by partition without a shuffle.
"""

from __future__ import annotations

import hashlib
import logging
import time

import pyarrow as pa
import pyarrow.parquet as pq
import ray
from pyarrow import fs as pafs
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from tala_ray.core.errors import UserError
from tala_ray.core.storage import join_path, read_model, resolve_filesystem, write_model
from tala_ray.data import schema
from tala_ray.data.design import ONE_ARM, Design
from tala_ray.data.scenarios import LiveSpec, ScenarioRecord, scenario_record, simulate_live_chunk
from tala_ray.data.world import simulate_chunk

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LIVE_DIR = "live"
LIVE_TABLES = (*schema.TABLES, "potential_outcomes")
PARTITION_KEY = "applicant_part"  # hive-style directory key of a partitioned world: `<table>/applicant_part=<k>/`


class WorldSpec(BaseModel):
    """What to generate."""

    model_config = ConfigDict(extra="forbid")

    applicants: int = Field(gt=0, description="Number of applicants (one application each).")
    seed: int = Field(ge=0, description="Random seed: the same seed and size give identical tables.")
    chunk_size: int = Field(20_000, gt=0, description="Applicants per Ray task; bounds each task's memory.")
    live: LiveSpec = Field(default_factory=LiveSpec, description="The live period after training (none by default).")
    design: Design = Field(
        ONE_ARM,
        exclude_if=lambda design: design.is_one_arm,
        description="The experiment's intervention arms and outcomes (default: one arm, binary default only).",
    )
    partitioned: bool = Field(
        False,
        description=f"Write each chunk's files under `{PARTITION_KEY}=<chunk>/` in every table: all rows of an "
        "applicant lie in the same partition, and the directory names declare it (a feature build then needs "
        "no shuffle). The files' bytes are the same either way.",
    )

    def chunk_counts(self) -> tuple[int, int]:
        """How many training chunks and live chunks the world has."""
        return -(-self.applicants // self.chunk_size), -(-self.live.applicants // self.chunk_size)


class TableManifest(BaseModel):
    rows: int
    files: dict[str, str]  # relative path -> sha256 of its bytes


class WorldManifest(BaseModel):
    """Written next to the tables; the content hash covers every file's bytes."""

    schema_version: str
    spec: WorldSpec
    chunks: int
    tables: dict[str, TableManifest]
    content_hash: str
    elapsed_seconds: float
    live: ScenarioRecord | None = None  # the live period's scenario, when the world has one


class OutputExistsError(UserError):
    """The output location is not safe to write to."""


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _chunk_tables(spec: WorldSpec, chunk_index: int, live: bool) -> tuple[str, dict[str, pa.Table]]:
    """The directory prefix and the tables of one training or live chunk (live ids follow training's)."""
    first = chunk_index * spec.chunk_size
    if not live:
        n = min(spec.chunk_size, spec.applicants - first)
        return "", simulate_chunk(spec.seed, chunk_index, first, n, spec.design)
    n = min(spec.chunk_size, spec.live.applicants - first)
    return f"{LIVE_DIR}/", simulate_live_chunk(spec.seed, chunk_index, spec.applicants + first, n, spec.live)


@ray.remote(num_cpus=1)
def _generate_chunk(spec: WorldSpec, chunk_index: int, out: str, live: bool) -> dict[str, tuple[int, str, str]]:
    """Simulate and write one chunk; return table -> (rows, relative path, sha256)."""
    filesystem, root = resolve_filesystem(out)
    prefix, tables = _chunk_tables(spec, chunk_index, live)
    result = {}
    partition = f"{PARTITION_KEY}={chunk_index:05d}/" if spec.partitioned else ""
    for name, table in tables.items():
        relative = f"{prefix}{name}/{partition}part-{chunk_index:05d}.parquet"
        data = _parquet_bytes(table)
        if partition:
            filesystem.create_dir(join_path(root, prefix + name, partition), recursive=True)
        with filesystem.open_output_stream(join_path(root, relative)) as stream:
            stream.write(data)
        result[prefix + name] = (table.num_rows, relative, hashlib.sha256(data).hexdigest())
    return result


def check_output(out: str, overwrite: bool) -> None:
    """Refuse an output that is a file, or a non-empty directory without `overwrite`."""
    filesystem, root = resolve_filesystem(out)
    info = filesystem.get_file_info(root)
    if info.type == pafs.FileType.File:
        raise OutputExistsError(f"output {out!r} is a file; give a directory")
    if info.type == pafs.FileType.Directory:
        entries = filesystem.get_file_info(pafs.FileSelector(root, recursive=False))
        if entries and not overwrite:
            raise OutputExistsError(f"output {out!r} exists and is not empty; pass --overwrite to replace it")


def _table_names(spec: WorldSpec) -> list[str]:
    return [*schema.TABLES, *([f"{LIVE_DIR}/{name}" for name in LIVE_TABLES] if spec.live.applicants else [])]


def _prepare_output(out: str, spec: WorldSpec) -> None:
    filesystem, root = resolve_filesystem(out)
    if filesystem.get_file_info(root).type == pafs.FileType.Directory:
        filesystem.delete_dir_contents(root)
    for name in _table_names(spec):
        filesystem.create_dir(join_path(root, name), recursive=True)


def generate_world(spec: WorldSpec, out: str, overwrite: bool = False, progress: bool = True) -> WorldManifest:
    """Generate the world into `out` (a path or URI) on the current Ray cluster; return its manifest."""
    check_output(out, overwrite)
    _prepare_output(out, spec)
    started = time.perf_counter()
    chunks, live_chunks = spec.chunk_counts()
    pending = [_generate_chunk.remote(spec, i, out, False) for i in range(chunks)]
    pending += [_generate_chunk.remote(spec, i, out, True) for i in range(live_chunks)]
    tables: dict[str, TableManifest] = {name: TableManifest(rows=0, files={}) for name in _table_names(spec)}
    with tqdm(total=len(pending), desc="generating world (chunks)", disable=not progress) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for name, (rows, relative, digest) in ray.get(done[0]).items():
                tables[name].rows += rows
                tables[name].files[relative] = digest
            bar.update(1)
    manifest = WorldManifest(
        schema_version=schema.SCHEMA_VERSION,
        spec=spec,
        chunks=chunks,
        tables=tables,
        content_hash=_content_hash(tables),
        elapsed_seconds=round(time.perf_counter() - started, 3),
        live=scenario_record(spec.live) if spec.live.applicants else None,
    )
    write_model(out, MANIFEST, manifest)
    log.info("world written to %s: %s", out, {k: v.rows for k, v in tables.items()})
    return manifest


def _content_hash(tables: dict[str, TableManifest]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tables):
        for relative, file_hash in sorted(tables[name].files.items()):
            digest.update(f"{relative}:{file_hash}\n".encode())
    return digest.hexdigest()


def read_manifest(world: str) -> WorldManifest:
    """The manifest of a generated world."""
    missing = f"no world at {world!r}: {MANIFEST} is missing (run `tala-ray data generate`)"
    return read_model(world, MANIFEST, WorldManifest, missing)
