"""Shared fixtures: one local Ray cluster for the whole session, and a small generated world."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import ray

from tala_ray.data.generate import WorldSpec, generate_world

SMALL_WORLD = WorldSpec(applicants=4_000, seed=11, chunk_size=1_000)


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster (2 CPUs), started once and shut down at the end of the session."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def small_world(ray_cluster, tmp_path_factory) -> Path:
    """A 4,000-applicant world generated once per session on the Ray cluster."""
    out = tmp_path_factory.mktemp("world")
    generate_world(SMALL_WORLD, str(out), overwrite=True, progress=False)
    return out
