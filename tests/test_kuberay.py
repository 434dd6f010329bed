"""deploy/kuberay/rayservice.yaml: serveConfigV2 is the shipped Serve config (plus what changes on
Kubernetes), valid for Ray's own Serve schema and our app; every other field is one KubeRay's
RayService CRD (ray.io/v1) defines, with the autoscaling, GCS fault tolerance and blue-green
upgrade the cluster needs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
import ray
import yaml
from pydantic import BaseModel, ConfigDict, Field
from ray.serve.schema import ServeDeploySchema

from tala_ray.core.errors import UserError
from tala_ray.serving.kuberay import CLUSTER_CHANGES, SERVE_CONFIG, render_manifest, serve_config_v2
from tala_ray.serving.launch import HAPROXY_ENVIRONMENT, load_serve_config

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "deploy" / "kuberay" / "rayservice.yaml"


# The fields of KubeRay's CRDs (v1.7.0: ray-operator/apis/ray/v1/rayservice_types.go and
# raycluster_types.go; the Kubernetes core/v1 types for pods) that the manifest may use. Unknown
# keys are refused, so a misspelt or invented field fails here instead of being pruned silently by
# the API server.
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ObjectMeta(Strict):
    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class SecretKeySelector(Strict):
    name: str
    key: str
    optional: bool | None = None


class EnvVarSource(Strict):
    secretKeyRef: SecretKeySelector | None = None
    configMapKeyRef: SecretKeySelector | None = None


class EnvVar(Strict):
    name: str
    value: str | None = None
    valueFrom: EnvVarSource | None = None


class VolumeMount(Strict):
    name: str
    mountPath: str
    readOnly: bool | None = None


class KeyToPath(Strict):
    key: str
    path: str


class SecretVolumeSource(Strict):
    secretName: str
    items: list[KeyToPath] = []


class Volume(Strict):
    name: str
    secret: SecretVolumeSource


class ContainerPort(Strict):
    containerPort: int = Field(gt=0, lt=65536)
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] | None = None


class ResourceRequirements(Strict):
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}


class Container(Strict):
    name: str
    image: str
    imagePullPolicy: Literal["Always", "IfNotPresent", "Never"] | None = None
    resources: ResourceRequirements | None = None
    ports: list[ContainerPort] = []
    env: list[EnvVar] = []
    volumeMounts: list[VolumeMount] = []


class Toleration(Strict):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None


class PodSpec(Strict):
    serviceAccountName: str | None = None
    nodeSelector: dict[str, str] = {}
    tolerations: list[Toleration] = []
    containers: list[Container]
    volumes: list[Volume] = []


class PodTemplateSpec(Strict):
    metadata: ObjectMeta | None = None
    spec: PodSpec


class HeadGroupSpec(Strict):
    rayStartParams: dict[str, str]
    template: PodTemplateSpec
    serviceType: str | None = None
    enableIngress: bool | None = None


class WorkerGroupSpec(Strict):
    groupName: str
    replicas: int | None = Field(None, ge=0)
    minReplicas: int = Field(ge=0)
    maxReplicas: int = Field(ge=0)
    idleTimeoutSeconds: int | None = None
    rayStartParams: dict[str, str]
    template: PodTemplateSpec


class AutoscalerOptions(Strict):
    upscalingMode: Literal["Default", "Aggressive", "Conservative"] | None = None
    idleTimeoutSeconds: int | None = Field(None, ge=0)
    resources: ResourceRequirements | None = None
    version: Literal["v1", "v2"] | None = None


class RedisCredential(Strict):
    value: str | None = None
    valueFrom: EnvVarSource | None = None


class GcsFaultToleranceOptions(Strict):
    redisAddress: str | None = None
    redisPassword: RedisCredential | None = None
    redisUsername: RedisCredential | None = None
    externalStorageNamespace: str | None = None


class RayClusterSpec(Strict):
    rayVersion: str | None = None
    enableInTreeAutoscaling: bool | None = None
    autoscalerOptions: AutoscalerOptions | None = None
    gcsFaultToleranceOptions: GcsFaultToleranceOptions | None = None
    headGroupSpec: HeadGroupSpec
    workerGroupSpecs: list[WorkerGroupSpec] = []


class RayServiceUpgradeStrategy(Strict):
    type: Literal["NewCluster", "NewClusterWithIncrementalUpgrade", "None"] | None = None


class RayServiceSpec(Strict):
    upgradeStrategy: RayServiceUpgradeStrategy | None = None
    serveConfigV2: str | None = None
    rayClusterConfig: RayClusterSpec
    excludeHeadPodFromServeSvc: bool | None = None


class RayService(Strict):
    apiVersion: Literal["ray.io/v1"]
    kind: Literal["RayService"]
    metadata: ObjectMeta
    spec: RayServiceSpec


@pytest.fixture(scope="module")
def manifest() -> RayService:
    return RayService.model_validate(yaml.safe_load(MANIFEST.read_text()))


def test_every_field_is_one_kuberay_defines(manifest):
    assert manifest.metadata.name == "tala-ray"
    cluster = manifest.spec.rayClusterConfig
    assert cluster.rayVersion == ray.__version__ == "2.60.0", "the manifest runs the pinned Ray"
    images = {c.image for group in groups(manifest) for c in group.template.spec.containers}
    assert images == {"tala-ray:0.1.0"}, "one image everywhere"
    dockerfile = (ROOT / "deploy" / "kuberay" / "Dockerfile").read_text()
    cluster_yaml = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    assert f"FROM {cluster_yaml['docker']['image']}\n" in dockerfile, "the image builds on cluster.yaml's"
    assert "-c /home/ray/tala-ray/constraints.txt" in dockerfile


def groups(manifest: RayService) -> list[HeadGroupSpec | WorkerGroupSpec]:
    cluster = manifest.spec.rayClusterConfig
    return [cluster.headGroupSpec, *cluster.workerGroupSpecs]


def test_serve_config_v2_is_the_shipped_config_valid_for_rays_schema_and_our_app(manifest, tmp_path):
    raw = yaml.safe_load(manifest.spec.serveConfigV2)
    ServeDeploySchema.model_validate(raw)  # Ray's own schema, as the dashboard's REST API applies it
    candidate = tmp_path / "serve_config_v2.yaml"
    candidate.write_text(manifest.spec.serveConfigV2)
    load_serve_config(candidate)  # our AppArgs and user_configs, as `tala-ray serve` checks them
    assert manifest.spec.serveConfigV2 == serve_config_v2(), "run `make kuberay` and commit the manifest"

    shipped = yaml.safe_load((ROOT / SERVE_CONFIG).read_text())
    app, original = raw["applications"][0], shipped["applications"][0]
    assert {k: v for k, v in app["args"].items() if k not in CLUSTER_CHANGES["args"]} == {
        k: v for k, v in original["args"].items() if k not in CLUSTER_CHANGES["args"]
    }, "the policy, models, graph and limits are the shipped ones"
    assert app["args"]["registry_uri"].startswith("s3://") and app["args"]["prediction_log_uri"].startswith("s3://")
    assert [d["name"] for d in app["deployments"]] == [d["name"] for d in original["deployments"]]
    assert raw["http_options"]["host"] == "0.0.0.0" and raw["http_options"]["port"] == shipped["http_options"]["port"]
    assert raw["proxy_location"] == "EveryNode"


def test_head_and_worker_groups_autoscale(manifest):
    cluster = manifest.spec.rayClusterConfig
    assert cluster.enableInTreeAutoscaling is True and cluster.autoscalerOptions.idleTimeoutSeconds > 0
    assert cluster.headGroupSpec.rayStartParams["num-cpus"] == "0", "work lands on the workers"
    workers = cluster.workerGroupSpecs
    assert {w.groupName for w in workers} == {"cpu-small", "cpu-spot"}
    for worker in workers:
        assert worker.minReplicas <= (worker.replicas or 0) <= worker.maxReplicas
    assert all(w.maxReplicas > w.minReplicas for w in workers), "every group can grow"


def test_gcs_fault_tolerance_keeps_its_state_in_an_external_redis_whose_password_is_a_secret(manifest):
    options = manifest.spec.rayClusterConfig.gcsFaultToleranceOptions
    assert options.redisAddress.startswith("redis://") and options.redisAddress.endswith(":6379")
    assert options.redisPassword.value is None and options.redisPassword.valueFrom.secretKeyRef.name


def test_upgrades_are_blue_green_cluster_swaps(manifest):
    assert manifest.spec.upgradeStrategy.type == "NewCluster"


def test_every_ray_container_runs_the_shipped_ingress_settings_and_gets_the_api_key_from_a_secret(manifest):
    for group in groups(manifest):
        (container,) = group.template.spec.containers
        env = {e.name: e for e in container.env}
        assert {name: env[name].value for name in HAPROXY_ENVIRONMENT} == HAPROXY_ENVIRONMENT, container.name
        assert env["TALA_API_KEY"].value is None and env["TALA_API_KEY"].valueFrom.secretKeyRef.key
        assert "metrics" in {p.name for p in container.ports}, "Prometheus scrapes every pod"


def test_every_ray_container_trusts_the_signing_public_key_mounted_from_a_secret(manifest):
    for group in groups(manifest):
        spec = group.template.spec
        (container,) = spec.containers
        trusted = Path({e.name: e for e in container.env}["TALA_TRUSTED_KEYS"].value)
        (mount,) = [m for m in container.volumeMounts if Path(m.mountPath) == trusted.parent]
        (volume,) = [v for v in spec.volumes if v.name == mount.name]
        assert mount.readOnly and trusted.name in {item.path for item in volume.secret.items}, container.name


def test_the_generator_refuses_a_manifest_whose_serve_config_is_not_the_last_key():
    text = MANIFEST.read_text()
    assert render_manifest(text) == text
    with pytest.raises(UserError, match="serveConfigV2"):
        render_manifest(text + "  excludeHeadPodFromServeSvc: true\n")
    with pytest.raises(UserError, match="serveConfigV2"):
        render_manifest(text.replace("  serveConfigV2: |\n", "  serveConfigV2: >\n"))
