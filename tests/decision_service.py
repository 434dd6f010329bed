"""The decision service as the engineers' tools see it from outside (the dashboard, Prometheus):
two small models in a temporary registry and `serve_configs/credit_decision_composed.yaml` (every
graph step its own deployment, so there is something to see per step), deployed on the session's
Ray cluster with real HTTP on a free loopback port. Used by one module at a time (module-scoped
fixtures), which shuts Serve down when it is done."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import yaml

from tala_ray.core.net import free_port
from tala_ray.core.registry import ArtifactMetadata, Registry
from tala_ray.features.definitions import compute_features, feature_set_version
from tala_ray.models.credit import LogisticCreditModel
from tala_ray.models.uplift import TLearnerUplift
from tala_ray.serving.launch import deploy, load_serve_config
from tala_ray.traffic.replay import read_world_tables, request_payload

COMPOSED_CONFIG = Path(__file__).resolve().parents[1] / "serve_configs" / "credit_decision_composed.yaml"
APP = "credit_decision"
API_KEY = "dashboard-test-key-" + "z" * 16
DEPLOY_TIMEOUT_S = 240


@dataclass
class RunningService:
    url: str
    raw: dict  # the Serve config as deployed
    registry: Registry
    bodies: list[dict]  # request bodies of applications the models were not trained on
    workdir: Path

    @property
    def deployments(self) -> list[str]:
        """The application's deployments as Serve runs them (the config's, and the ones the builder adds)."""
        from ray import serve

        return sorted(serve.status().applications[APP].deployments)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)

    def redeploy(self) -> None:
        path = self.workdir / "config.yaml"
        path.write_text(yaml.safe_dump(self.raw))
        deploy(load_serve_config(path, pin_versions=True), timeout_s=DEPLOY_TIMEOUT_S)


def _registry(world: dict[str, pd.DataFrame], root: Path) -> Registry:
    """A logistic credit model and a small T-learner, trained on 1,500 applications."""
    train = world["applications"].sort_values("application_id").iloc[:1500]
    ids = train["applicant_id"]
    features = compute_features(
        train, *(world[table][world[table]["applicant_id"].isin(ids)] for table in ("applicants", "events", "loans"))
    )
    features = features.set_index("application_id").loc[train["application_id"]].reset_index()
    names = [c for c in features.columns if c != "application_id"]
    fsv = feature_set_version()
    registry = Registry(str(root))
    credit = LogisticCreditModel(C=1.0).fit(features[names], train["defaulted"].to_numpy())
    metadata = ArtifactMetadata(kind="credit", family="logistic", feature_set_version=fsv, feature_names=names)
    registry.set_alias("credit_pd", "champion", registry.register("credit_pd", credit.to_files(), metadata).version)
    uplift = TLearnerUplift(nuisance_n_estimators=30, cv=2).fit(
        1 - train["defaulted"].to_numpy(), train["treatment"].to_numpy(), X=features[names]
    )
    metadata = ArtifactMetadata(kind="uplift", family=uplift.family, feature_set_version=fsv, feature_names=names)
    registry.set_alias("uplift", "champion", registry.register("uplift", uplift.to_files(), metadata).version)
    return registry


@contextmanager
def running_decision_service(world_dir: Path, workdir: Path) -> Iterator[RunningService]:
    """Deploy the composed decision service; shut Serve down afterwards."""
    from ray import serve

    world = read_world_tables(str(world_dir))
    registry = _registry(world, workdir / "registry")
    (workdir / "api_keys").write_text(API_KEY + "\n")
    raw = yaml.safe_load(COMPOSED_CONFIG.read_text())
    port = free_port()
    raw["http_options"]["port"] = port
    for deployment in raw["applications"][0]["deployments"]:  # leave room on the shared 2-CPU cluster
        deployment["ray_actor_options"] = {"num_cpus": 0.05}
    raw["applications"][0]["args"].update(
        registry_uri=registry.uri,
        api_key_file=str(workdir / "api_keys"),
        prediction_log_uri=str(workdir / "prediction_log"),
    )
    held_out = world["applications"].sort_values("application_id").iloc[2000:2040]
    service = RunningService(
        url=f"http://127.0.0.1:{port}",
        raw=raw,
        registry=registry,
        bodies=[request_payload(world, row) for _, row in held_out.iterrows()],
        workdir=workdir,
    )
    try:
        service.redeploy()
        yield service
    finally:
        serve.shutdown()
