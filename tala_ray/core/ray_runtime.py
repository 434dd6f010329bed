"""Joining or starting the Ray cluster the program runs on."""

from __future__ import annotations

import logging
import os

import ray

from tala_ray.core.settings import get_settings

log = logging.getLogger(__name__)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to `address` (or RAY_ADDRESS / TALA_RAY_ADDRESS); with none, start a local cluster.

    Inside a `ray job submit` job RAY_ADDRESS is set, so the job joins the cluster it runs on.
    A no-op when Ray is already initialised in this process.
    """
    if ray.is_initialized():
        return
    settings = get_settings()
    address = address or os.environ.get("RAY_ADDRESS") or settings.ray_address
    if address:
        log.info("joining Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=True)
        return
    cpus = num_cpus or settings.num_cpus
    log.info("starting a local Ray cluster (num_cpus=%s)", cpus or "all")
    ray.init(address="local", num_cpus=cpus, include_dashboard=False)
