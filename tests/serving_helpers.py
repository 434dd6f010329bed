"""Helpers of the serving tests that need no Ray: a small signed registry and the in-process app
served by a real uvicorn process on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd

from tala_ray.core.net import free_port
from tala_ray.core.registry import ArtifactMetadata, Registry
from tala_ray.data.world import simulate_chunk
from tala_ray.features.definitions import compute_features, feature_set_version
from tala_ray.models.credit import LogisticCreditModel
from tala_ray.models.uplift import TLearnerUplift
from tala_ray.traffic.replay import request_payload


def small_registry(root: Path, seed: int = 21, applications: int = 1_500) -> tuple[str, dict[str, pd.DataFrame]]:
    """A registry (manifests signed by the local development key, as `Registry.register` does) with
    a logistic credit champion and a T-learner uplift champion trained on a simulated world; returns
    its URI and the world."""
    world = {name: t.to_pandas() for name, t in simulate_chunk(seed, 0, 0, applications).items()}
    apps = world["applications"]
    features = compute_features(apps, world["applicants"], world["events"], world["loans"])
    names = [c for c in features.columns if c != "application_id"]
    registry, fsv = Registry(str(root)), feature_set_version()
    credit = LogisticCreditModel(C=1.0).fit(features[names], apps["defaulted"].to_numpy())
    meta = ArtifactMetadata(kind="credit", family="logistic", feature_set_version=fsv, feature_names=names)
    registry.set_alias("credit_pd", "champion", registry.register("credit_pd", credit.to_files(), meta).version)
    uplift = TLearnerUplift(nuisance_n_estimators=20, cv=2).fit(
        1 - apps["defaulted"].to_numpy(), apps["treatment"].to_numpy(), X=features[names]
    )
    meta = ArtifactMetadata(kind="uplift", family=uplift.family, feature_set_version=fsv, feature_names=names)
    registry.set_alias("uplift", "champion", registry.register("uplift", uplift.to_files(), meta).version)
    return registry.uri, world


def replayed(world: dict[str, pd.DataFrame], n: int = 20) -> list[dict]:
    """Request bodies of `n` applications of the world (half with records after the application)."""
    rows = world["applications"].sample(n, random_state=4)
    return [request_payload(world, row, include_future=i % 2 == 0) for i, (_, row) in enumerate(rows.iterrows())]


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident set size so far (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def chunked_json_body(total_mb: int) -> Iterator[bytes]:
    """A JSON body of about `total_mb` MB (one long string), sent chunked by httpx (no Content-Length)."""
    yield b'{"applicant": "'
    block = b"x" * 65_536
    for _ in range(total_mb * 16):
        yield block
    yield b'"}'


@dataclass(frozen=True)
class Server:
    url: str
    pid: int

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.pid)


@contextmanager
def in_process_server(registry: str, timeout_s: float = 120.0, **env: str) -> Iterator[Server]:
    """`uvicorn --factory tala_ray.serving.inprocess:create_app` on 127.0.0.1 (a free port) in its own
    process, with `TALA_INPROCESS_*` settings from `env` (e.g. MAX_BODY_BYTES="1000000"); stopped at exit."""
    port = free_port()
    variables = os.environ | {"TALA_INPROCESS_REGISTRY": registry} | {f"TALA_INPROCESS_{k}": v for k, v in env.items()}
    command = [sys.executable, "-m", "uvicorn", "--factory", "tala_ray.serving.inprocess:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    log = tempfile.TemporaryFile()  # a pipe nobody reads could fill up and stop the server
    process = subprocess.Popen(command, env=variables, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"the server exited: {log.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start in time")
            time.sleep(0.3)
        yield Server(url, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
