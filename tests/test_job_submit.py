"""The researcher's cluster workflow: `ray start --head`, submit `tala-ray tune` as a Ray job, find the model.

Starts its own head (separate ports and temp dir) and stops only that head's processes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tala_ray.registry import Registry, load_credit_predictor

VENV_BIN = Path(sys.executable).parent
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_cluster(temp_dir: Path) -> None:
    """Terminate the processes of the head started with `temp_dir` (and their children), nothing else."""
    own = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    owned = {}
    for process in psutil.process_iter(["cmdline"]):
        if process.pid not in own and any(str(temp_dir) in arg for arg in process.info["cmdline"] or []):
            owned[process.pid] = process
            owned.update({child.pid: child for child in process.children(recursive=True)})
    for process in owned.values():
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(list(owned.values()), timeout=15)
    for process in alive:
        process.kill()


@pytest.fixture
def ray_head():
    """A one-CPU head started with `ray start --head`, the venv first on PATH; yields (dashboard URL, token)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="tjs", dir="/tmp"))  # short: socket paths have a length limit
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    dashboard_port = free_port()
    command = [
        str(VENV_BIN / "ray"), "start", "--head", f"--port={free_port()}", f"--dashboard-port={dashboard_port}",
        "--dashboard-host=127.0.0.1", "--node-ip-address=127.0.0.1", "--num-cpus=1", f"--temp-dir={temp_dir}",
        f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
        "--disable-usage-stats",
    ]
    try:
        started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stderr[-2000:]
        token_file = Path.home() / ".ray" / "auth_token"
        token = token_file.read_text().strip() if token_file.exists() else None
        yield f"http://127.0.0.1:{dashboard_port}", token
    finally:
        stop_cluster(temp_dir)


def test_tune_submitted_as_a_ray_job_lands_in_the_registry(ray_head, tmp_path):
    from ray.job_submission import JobSubmissionClient

    address, token = ray_head
    work = tmp_path / "project"
    (work / "experiments").mkdir(parents=True)
    spec = yaml.safe_load((Path(__file__).parent.parent / "experiments" / "credit_logistic.yaml").read_text())
    spec |= {"name": "job_logistic", "trials": 2, "register_as": "job_pd"}
    (work / "experiments" / "job.yaml").write_text(yaml.safe_dump(spec))
    world, features, registry = tmp_path / "world", tmp_path / "features", tmp_path / "registry"
    entrypoint = (
        f"tala-ray data generate --applicants 1500 --seed 3 --chunk-size 1500 --out {world} && "
        f"tala-ray features build --engine local --world {world} --out {features} && "
        f"tala-ray tune experiments/job.yaml --data-path {features} --world {world} "
        f"--registry {registry} --runs-root {tmp_path / 'runs'}"
    )
    client = JobSubmissionClient(address, headers={"Authorization": f"Bearer {token}"} if token else None)
    job = client.submit_job(entrypoint=entrypoint, runtime_env={"working_dir": str(work)})
    deadline = time.monotonic() + 600  # a bound on waiting, not a speed assertion
    while str(client.get_job_status(job).value) not in TERMINAL and time.monotonic() < deadline:
        time.sleep(2)
    logs = client.get_job_logs(job)
    assert str(client.get_job_status(job).value) == "SUCCEEDED", logs[-3000:]
    assert "registered job_pd@1" in logs

    assert Registry(str(registry)).versions("job_pd") == ["1"]
    manifest = Registry(str(registry)).manifest("job_pd", "1")
    assert manifest.family == "logistic" and manifest.feature_set_version and manifest.data_content_hash
    assert "best_possible_auc" in manifest.extra
    assert load_credit_predictor(str(registry), "job_pd").version == "1"
