"""cluster.yaml: valid for Ray's cluster launcher, autoscaling CPU workers, the project installed
with its pins, and nothing but SSH reachable from outside (dashboard, GCS, Serve stay private)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_FILE = ROOT / "cluster.yaml"
PRIVATE_PORTS = {
    22: False,
    6379: True,
    8000: True,
    8076: True,
    8265: True,
    10001: True,
    30000: True,
    8080: True,
    8404: True,
    9101: True,
}


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load(CLUSTER_FILE.read_text())


def opened_ports(rule: dict) -> range:
    if rule.get("IpProtocol") == "-1":
        return range(0, 65536)
    return range(int(rule.get("FromPort", 0)), int(rule.get("ToPort", 65535)) + 1)


def test_cluster_config_passes_rays_schema(cluster: dict) -> None:
    validate_config(cluster)
    validate_config(prepare_config(copy.deepcopy(cluster)))  # with the launcher's defaults filled in


def test_schema_check_rejects_a_broken_config(cluster: dict) -> None:
    broken = copy.deepcopy(cluster)
    broken["available_node_types"]["cpu_small"]["min_wokers"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


def test_cloud_provider_and_autoscaling_cpu_workers(cluster: dict) -> None:
    assert cluster["provider"]["type"] in {"aws", "gcp", "azure"}
    node_types = cluster["available_node_types"]
    assert cluster["head_node_type"] in node_types
    workers = {name: spec for name, spec in node_types.items() if name != cluster["head_node_type"]}
    assert workers, "at least one worker node type"
    for name, spec in workers.items():
        assert 0 <= spec["min_workers"] <= spec["max_workers"], name
    assert any(spec["max_workers"] > spec["min_workers"] for spec in workers.values()), "room to scale out"
    assert cluster["max_workers"] >= max(spec["max_workers"] for spec in workers.values())


def test_nodes_run_the_pinned_ray_and_python_and_install_the_project(cluster: dict) -> None:
    image = cluster["docker"]["image"]
    assert f"ray:{ray.__version__}-py311" in image
    pins = (ROOT / "constraints.txt").read_text()
    assert f"ray=={ray.__version__}" in pins
    setup = " ".join(cluster["setup_commands"])
    assert re.search(r"pip install .*-c constraints\.txt -e \.", setup)
    assert "." in cluster["file_mounts"].values()


def privately_meant_ports_open_to_the_internet(cluster: dict) -> list[int]:
    """Ports (other than SSH) that a security-group rule of the config opens to any address."""
    exposed: list[int] = []
    for rule in cluster["provider"].get("security_group", {}).get("IpPermissions", []):
        ranges = [r.get("CidrIp", r.get("CidrIpv6")) for r in rule.get("IpRanges", []) + rule.get("Ipv6Ranges", [])]
        if {"0.0.0.0/0", "::/0"} & set(ranges):
            exposed += [port for port, private in PRIVATE_PORTS.items() if private and port in opened_ports(rule)]
    return exposed


def test_only_ssh_is_open_to_the_outside(cluster: dict) -> None:
    assert cluster["provider"]["security_group"]["GroupName"], "a launcher-managed group: intra-cluster traffic and SSH"
    assert privately_meant_ports_open_to_the_internet(cluster) == []
    for node in cluster["available_node_types"].values():
        assert "SecurityGroupIds" not in node["node_config"], "the launcher-managed private group is used"
        assert not node["node_config"].get("NetworkInterfaces"), "no public interface overrides"


def test_a_public_dashboard_rule_would_be_caught(cluster: dict) -> None:
    leaky = copy.deepcopy(cluster)
    leaky["provider"]["security_group"]["IpPermissions"] = [
        {"IpProtocol": "tcp", "FromPort": 8265, "ToPort": 8265, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    ]
    assert privately_meant_ports_open_to_the_internet(leaky) == [8265]


def test_dashboard_binds_loopback_on_the_head(cluster: dict) -> None:
    head_start = " ".join(cluster["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    assert "0.0.0.0" not in head_start
    assert "0.0.0.0" not in " ".join(cluster["worker_start_ray_commands"])


def test_serve_settings_reach_every_ray_process(cluster: dict) -> None:
    """The Serve environment `tala-ray serve --haproxy` uses (HAPROXY_ENVIRONMENT) and object-storage locations."""
    from tala_ray.serving.launch import HAPROXY_ENVIRONMENT

    env_setup = next(c for c in cluster["setup_commands"] if "tala-ray.env" in c)
    serve_env = [f"{k}={v}" for k, v in HAPROXY_ENVIRONMENT.items()]
    for variable in (*serve_env, "TALA_REGISTRY_URI=s3://", "TALA_DATA_ROOT=s3://"):
        assert variable in env_setup
    # the whole throughput bundle stopped the ingress autoscaling in the no-op study: left out
    assert "RAY_SERVE_THROUGHPUT_OPTIMIZED" not in env_setup
    for command in (cluster["head_start_ray_commands"][-1], cluster["worker_start_ray_commands"][-1]):
        assert command.index("tala-ray.env") < command.index("ray start")
