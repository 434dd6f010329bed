"""Shared fixtures: one local Ray cluster for the whole session, and a small generated world."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import ray

from tala_ray.core.net import free_port
from tala_ray.core.settings import get_settings
from tala_ray.data.generate import WorldSpec, generate_world
from tala_ray.streaming.server import running_server, stop_server

SMALL_WORLD = WorldSpec(applicants=4_000, seed=11, chunk_size=1_000)

pytest_plugins = ["streaming_fixtures"]  # the embedded Valkey server and stream config fixtures


def pytest_configure(config):
    """The session's embedded stream server (started on demand by the code under test) keeps its data
    in a directory of its own, so no state is shared with a developer's `stream/` or an earlier run."""
    if "TALA_STREAM_DIR" not in os.environ:
        os.environ["TALA_STREAM_DIR"] = tempfile.mkdtemp(prefix="tala-test-stream-")
    get_settings.cache_clear()


def pytest_unconfigure(config):
    """Stop the session's embedded stream server, by its pid, if the code under test started one."""
    info = running_server(os.environ["TALA_STREAM_DIR"])
    if info is not None:
        stop_server(info)
    shutil.rmtree(os.environ["TALA_STREAM_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster(request):
    """A real local Ray cluster (2 CPUs), started once and shut down at the end of the session; yields
    its context. Its dashboard (127.0.0.1, a free port) starts only when a test marked `dashboard` is
    collected: it costs a process and some CPU that the other tests do not need."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    dashboard = any(item.get_closest_marker("dashboard") for item in request.session.items)
    context = ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=dashboard,
        dashboard_host="127.0.0.1",
        dashboard_port=free_port() if dashboard else None,
        log_to_driver=False,
    )
    yield context
    ray.shutdown()


@pytest.fixture(scope="session")
def small_world(ray_cluster, tmp_path_factory) -> Path:
    """A 4,000-applicant world generated once per session on the Ray cluster."""
    out = tmp_path_factory.mktemp("world")
    generate_world(SMALL_WORLD, str(out), overwrite=True, progress=False)
    return out


@pytest.fixture(scope="session")
def world_50k(tmp_path_factory) -> tuple[str, str]:
    """A 50,000-applicant world and its feature table, built through the CLI (slow quality tests only)."""
    root = tmp_path_factory.mktemp("world_50k")
    world, features = str(root / "world"), str(root / "features")
    for args in (
        ("data", "generate", "--applicants", "50000", "--seed", "7", "--out", world),
        ("features", "build", "--world", world, "--out", features),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "tala_ray.cli", *args], capture_output=True, text=True, timeout=1800
        )
        assert result.returncode == 0, result.stderr[-3000:]
    return world, features
