"""The researcher-to-app path on a local multi-process cluster: `ray start --head`, data, features
and tuning submitted as Ray jobs, the Serve config deployed with the real `serve deploy` CLI, the
endpoint called over HTTP.

Starts its own head (separate ports and temp dir) once for the module and stops only that head's
processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from tala_ray.core.net import free_port
from tala_ray.core.registry import Registry
from tala_ray.models.predictors import load_predictor

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
API_KEY = "job-test-key-" + "k" * 24


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


def head_env(token: str | None) -> dict[str, str]:
    """The environment of a Ray CLI call against the head: the venv first on PATH, token auth on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    if token:
        env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    return env


def haproxy_env(temp_dir: Path) -> dict[str, str]:
    """Serve's fast ingress, as `cluster.yaml` sets it on every node; HAProxy's files and ports kept
    apart from any other HAProxy on the machine."""
    from tala_ray.serving.launch import HAPROXY_ENVIRONMENT

    state = temp_dir / "haproxy"
    return HAPROXY_ENVIRONMENT | {
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(state / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(state / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(state),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(state / "server-state"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
    }


@pytest.fixture(scope="module")
def ray_head():
    """A one-CPU head started with `ray start --head`, the venv first on PATH and Serve's HAProxy
    ingress on (as on a cluster.yaml node); yields (dashboard URL, token, temp dir)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="tjs", dir="/tmp"))  # short: socket paths have a length limit
    env = head_env(token=None) | haproxy_env(temp_dir)
    dashboard_port = free_port()
    command = [
        str(VENV_BIN / "ray"),
        "start",
        "--head",
        f"--port={free_port()}",
        f"--dashboard-port={dashboard_port}",
        "--dashboard-host=127.0.0.1",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        f"--temp-dir={temp_dir}",
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        "--disable-usage-stats",
    ]
    try:
        started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stderr[-2000:]
        token_file = Path.home() / ".ray" / "auth_token"
        token = token_file.read_text().strip() if token_file.exists() else None
        yield f"http://127.0.0.1:{dashboard_port}", token, temp_dir
    finally:
        stop_cluster(temp_dir)


def write_spec(template: str, target: Path, **changes) -> None:
    spec = yaml.safe_load((REPO / "experiments" / template).read_text()) | changes
    target.write_text(yaml.safe_dump(spec))


@pytest.fixture(scope="module")
def researcher_job(ray_head, tmp_path_factory):
    """One Ray job: a tiny world, its features, a 2-trial credit and a 1-trial uplift experiment."""
    from ray.job_submission import JobSubmissionClient

    address, token, _ = ray_head
    root = tmp_path_factory.mktemp("researcher")
    work = root / "project"
    (work / "experiments").mkdir(parents=True)
    write_spec("credit_logistic.yaml", work / "experiments" / "credit.yaml", name="job_logistic", trials=2)
    small_dr_learner = yaml.safe_load((REPO / "experiments" / "uplift_dr_learner.yaml").read_text())["model"]
    small_dr_learner["search_space"] |= {
        "nuisance_n_estimators": 40,
        "nuisance_num_leaves": 7,
        "final_n_estimators": 30,
        "final_num_leaves": 3,
        "final_min_child_samples": 50,
    }
    write_spec(
        "uplift_dr_learner.yaml",
        work / "experiments" / "uplift.yaml",
        name="job_dr_learner",
        trials=1,
        model=small_dr_learner,
    )
    world, features, registry = root / "world", root / "features", root / "registry"
    tune = f"--data-path {features} --world {world} --registry {registry} --runs-root {root / 'runs'}"
    entrypoint = (
        f"tala-ray data generate --applicants 3000 --seed 3 --chunk-size 3000 --out {world} && "
        f"tala-ray features build --engine local --world {world} --out {features} && "
        f"tala-ray tune experiments/credit.yaml {tune} && tala-ray tune experiments/uplift.yaml {tune}"
    )
    client = JobSubmissionClient(address, headers={"Authorization": f"Bearer {token}"} if token else None)
    job = client.submit_job(entrypoint=entrypoint, runtime_env={"working_dir": str(work)})
    deadline = time.monotonic() + 900  # a bound on waiting, not a speed assertion
    while str(client.get_job_status(job).value) not in TERMINAL and time.monotonic() < deadline:
        time.sleep(2)
    status, logs = str(client.get_job_status(job).value), client.get_job_logs(job)
    return {"status": status, "logs": logs, "world": world, "registry": registry, "root": root}


def test_tune_submitted_as_a_ray_job_lands_in_the_registry(researcher_job):
    assert researcher_job["status"] == "SUCCEEDED", researcher_job["logs"][-3000:]
    assert "registered credit_pd@1" in researcher_job["logs"]
    registry = Registry(str(researcher_job["registry"]))
    assert registry.versions("credit_pd") == ["1"] and registry.versions("uplift") == ["1"]
    manifest = registry.manifest("credit_pd", "1")
    assert manifest.family == "logistic" and manifest.feature_set_version and manifest.data_content_hash
    assert "best_possible_auc" in manifest.extra
    assert registry.manifest("uplift", "1").kind == "uplift"
    assert registry.aliases("credit_pd")["champion"] == "1" and registry.aliases("uplift")["champion"] == "1"
    assert load_predictor(str(registry.uri), "credit_pd", kind="credit").version == "1"


def serve_cli(token: str | None, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "serve"), *args], env=head_env(token), capture_output=True, text=True, timeout=timeout
    )


def deployed_config(tmp_path: Path, registry: Registry, port: int) -> Path:
    """serve_configs/credit_decision.yaml for this head: tmp registry and log, free port, key file, aliases pinned."""
    from tala_ray.serving.args import AppArgs
    from tala_ray.serving.launch import MODEL_ARGS, pin_model_versions

    (tmp_path / "api_keys").write_text(API_KEY + "\n")
    raw = yaml.safe_load((REPO / "serve_configs" / "credit_decision.yaml").read_text())
    raw["http_options"]["port"] = port
    application = raw["applications"][0]
    application["args"] |= {
        "registry_uri": registry.uri,
        "api_key_file": str(tmp_path / "api_keys"),
        "prediction_log_uri": str(tmp_path / "prediction_log"),
        "log_flush_interval_s": 0.5,
    }
    pinned = pin_model_versions(AppArgs.model_validate(application["args"]))  # `serve deploy` does not resolve aliases
    application["args"] |= {f: getattr(pinned, f).model_dump() for f in MODEL_ARGS if getattr(pinned, f)}
    for deployment in application["deployments"]:  # the head has one CPU
        deployment["ray_actor_options"] = {"num_cpus": 0.05}
    path = tmp_path / "credit_decision.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def ingress_replicas(token: str | None, address: str) -> int:
    """Running replicas of the decision ingress, as `serve status` reports them."""
    shown = serve_cli(token, "status", "--address", address, timeout=120)
    applications = (yaml.safe_load(shown.stdout or "{}") or {}).get("applications") or {}
    ingress = ((applications.get("credit_decision") or {}).get("deployments") or {}).get("DecisionIngress") or {}
    return int((ingress.get("replica_states") or {}).get("RUNNING", 0))


def test_serve_deploy_on_the_head_answers_with_the_tuned_models(ray_head, researcher_job, tmp_path):
    from tala_ray.traffic.replay import read_world_tables, request_payload

    assert researcher_job["status"] == "SUCCEEDED", researcher_job["logs"][-3000:]
    address, token, temp_dir = ray_head
    registry = Registry(str(researcher_job["registry"]))
    port = free_port()
    config = deployed_config(tmp_path, registry, port)
    try:
        deployed = serve_cli(token, "deploy", str(config), "--address", address)
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        deadline = time.monotonic() + 600  # a bound on waiting, not a speed assertion
        status, state = {}, None
        while time.monotonic() < deadline:
            shown = serve_cli(token, "status", "--address", address, timeout=120)
            status = yaml.safe_load(shown.stdout or "{}") or {}
            state = ((status.get("applications") or {}).get("credit_decision") or {}).get("status")
            assert state != "DEPLOY_FAILED", shown.stdout[-3000:]
            if state == "RUNNING":
                break
            time.sleep(2)
        assert state == "RUNNING", str(status)[-3000:]

        world = read_world_tables(str(researcher_job["world"]))
        application = world["applications"].sort_values("application_id").iloc[-1]
        body = request_payload(world, application)
        url = f"http://127.0.0.1:{port}/v1/decisions"
        answered = httpx.post(url, json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
        assert answered.status_code == 200, answered.text[:2000]
        decision = answered.json()
        assert decision["decision"] in {"approve", "decline"} and 0 <= decision["default_probability"] <= 1
        assert decision["model_versions"] == {"credit": "1", "credit_role": "champion", "uplift": "1"}
        assert httpx.post(url, json=body, timeout=60).status_code == 401
        haproxy = [
            p
            for p in psutil.process_iter(["name", "cmdline"])
            if "haproxy" in (p.info["name"] or "") and str(temp_dir) in " ".join(p.info["cmdline"] or [])
        ]
        assert haproxy, "the public port should be HAProxy's (RAY_SERVE_ENABLE_HA_PROXY on the head)"

        # under load through the one public address the ingress scales out (user code on the
        # replica's loop, RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0, keeps this working)
        assert ingress_replicas(token, address) == 1
        statuses: list[int] = []  # list.append is atomic: the workers share it
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as client:
                while not stop.is_set():
                    statuses.append(client.post(url, json=body).status_code)

        workers = [threading.Thread(target=load) for _ in range(16)]
        for worker in workers:
            worker.start()
        try:
            deadline = time.monotonic() + 180  # a bound on waiting, not a speed assertion
            while ingress_replicas(token, address) < 2 and time.monotonic() < deadline:
                time.sleep(2)
            scaled = ingress_replicas(token, address)
            time.sleep(3)  # traffic keeps flowing while the new replica joins HAProxy
        finally:
            stop.set()
            for worker in workers:
                worker.join()
        codes = Counter(statuses)
        assert scaled == 2, f"the ingress did not scale out under load: {dict(codes)}"
        assert set(codes) == {200} and codes[200] > 100, dict(codes)
    finally:
        serve_cli(token, "shutdown", "-y", "--address", address, timeout=120)
