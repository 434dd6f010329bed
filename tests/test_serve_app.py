"""The decision service end to end: real models in a temporary registry, the real Serve app from
`serve_configs/credit_decision_canary.yaml`, real HTTP. Serve starts once for the module."""

from __future__ import annotations

import gc
import json
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tala_ray.core.errors import UserError
from tala_ray.core.net import free_port
from tala_ray.core.registry import ArtifactMetadata, Registry
from tala_ray.features.definitions import FEATURE_NAMES, FEATURES, compute_features, feature_set_version
from tala_ray.models.credit import LogisticCreditModel
from tala_ray.models.predictors import load_predictor
from tala_ray.models.uplift import TLearnerUplift
from tala_ray.monitoring.prediction_log import read_prediction_log
from tala_ray.policy.decision import PolicyParams, decide, reason_codes
from tala_ray.serving.arrow_schema import ARROW_STREAM_MEDIA_TYPE
from tala_ray.serving.inprocess import create_app
from tala_ray.serving.launch import deploy, load_serve_config
from tala_ray.serving.schemas import BatchDecisionResponse
from tala_ray.traffic.arrow_encode import encode_payloads
from tala_ray.traffic.replay import read_world_tables, request_payload

pytestmark = pytest.mark.ray

CANARY_CONFIG = Path(__file__).resolve().parents[1] / "serve_configs" / "credit_decision_canary.yaml"
CREDIT_MODEL = "credit_pd"  # the name serve_configs/*.yaml serve
API_KEY = "test-key-" + "x" * 24
AUTH = {"Authorization": f"Bearer {API_KEY}"}
APP = "credit_decision"
ACKNOWLEDGED: list[str] = []  # request ids the service answered with 200, checked against the log at the end


def world_features(world: dict[str, pd.DataFrame], applications: pd.DataFrame) -> pd.DataFrame:
    """The offline (batch) features of `applications`, through the shared feature code."""
    ids = applications["applicant_id"]
    applicants = world["applicants"][world["applicants"]["applicant_id"].isin(ids)]
    events = world["events"][world["events"]["applicant_id"].isin(ids)]
    loans = world["loans"][world["loans"]["applicant_id"].isin(ids)]
    features = compute_features(applications, applicants, events, loans)
    return features.set_index("application_id").loc[applications["application_id"]].reset_index()


def register_credit(registry: Registry, features: pd.DataFrame, y: np.ndarray, C: float, fsv: str) -> str:
    names = [c for c in features.columns if c != "application_id"]
    model = LogisticCreditModel(C=C).fit(features[names], y)
    metadata = ArtifactMetadata(kind="credit", family="logistic", feature_set_version=fsv, feature_names=names)
    return registry.register(CREDIT_MODEL, model.to_files(), metadata).version


def register_uplift(registry: Registry, features: pd.DataFrame, applications: pd.DataFrame, fsv: str) -> str:
    """A small T-learner fitted on repayment (so `effect` is the reduction in default probability)."""
    names = [c for c in features.columns if c != "application_id"]
    model = TLearnerUplift(nuisance_n_estimators=30, cv=2).fit(
        1 - applications["defaulted"].to_numpy(), applications["treatment"].to_numpy(), X=features[names]
    )
    metadata = ArtifactMetadata(kind="uplift", family=model.family, feature_set_version=fsv, feature_names=names)
    return registry.register("uplift", model.to_files(), metadata).version


@pytest.fixture(scope="module")
def world(small_world) -> dict[str, pd.DataFrame]:
    return read_world_tables(str(small_world))


@pytest.fixture(scope="module")
def registry(world, tmp_path_factory) -> Registry:
    """v1 (champion) and v2 (challenger) credit models and one uplift model, trained on 1,500 applications."""
    fsv = feature_set_version()
    registry = Registry(str(tmp_path_factory.mktemp("registry")))
    train = world["applications"].sort_values("application_id").iloc[:1500]
    features = world_features(world, train)
    y = train["defaulted"].to_numpy()
    assert register_credit(registry, features, y, C=1.0, fsv=fsv) == "1"
    assert register_credit(registry, features, y, C=0.002, fsv=fsv) == "2"
    registry.set_alias(CREDIT_MODEL, "champion", "1")
    registry.set_alias(CREDIT_MODEL, "challenger", "2")
    registry.set_alias("uplift", "champion", register_uplift(registry, features, train, fsv))
    return registry


class Service:
    """The running application and a way to redeploy it with changed args."""

    def __init__(self, raw: dict, workdir: Path, port: int) -> None:
        self.raw, self.workdir, self.url = raw, workdir, f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, headers=AUTH, timeout=60)

    def deploy(self, user_configs: dict[str, dict] | None = None, **args) -> None:
        """Redeploy with changed `args` (rebuilds the app) and/or `user_config` overrides (in place)."""
        application = self.raw["applications"][0]
        application["args"].update(args)
        for deployment in application["deployments"]:
            if deployment["name"] in (user_configs or {}):
                deployment["user_config"] = user_configs[deployment["name"]]
        path = self.workdir / "config.yaml"
        path.write_text(yaml.safe_dump(self.raw))
        deploy(load_serve_config(path, pin_versions=True), timeout_s=240)

    def decide(self, body: dict, **headers) -> httpx.Response:
        response = self.client.post("/v1/decisions", json=body, headers=headers)
        if response.status_code == 200:
            ACKNOWLEDGED.append(response.json()["request_id"])
        return response

    def decide_batch(self, bodies: list[dict]) -> httpx.Response:
        response = self.client.post("/v1/decisions/batch", json={"applications": bodies})
        if response.status_code == 200:
            ACKNOWLEDGED.extend(d["request_id"] for d in response.json()["decisions"])
        return response


@pytest.fixture(scope="module")
def service(ray_cluster, registry, tmp_path_factory):
    from ray import serve

    workdir = tmp_path_factory.mktemp("service")
    (workdir / "api_keys").write_text(API_KEY + "\n")
    raw = yaml.safe_load(CANARY_CONFIG.read_text())
    port = free_port()
    raw["http_options"]["port"] = port
    for deployment in raw["applications"][0]["deployments"]:  # leave room on the shared 2-CPU cluster
        deployment["ray_actor_options"] = {"num_cpus": 0.05}
    raw["applications"][0]["args"].update(
        registry_uri=registry.uri,
        api_key_file=str(workdir / "api_keys"),
        prediction_log_uri=str(workdir / "prediction_log"),
        log_flush_interval_s=0.5,
        challenger_mode="off",
    )
    running = Service(raw, workdir, port)
    running.deploy()
    yield running
    running.client.close()
    serve.shutdown()


@pytest.fixture(scope="module")
def sample(world) -> pd.DataFrame:
    """Applications not used in training."""
    return world["applications"].sort_values("application_id").iloc[2000:2040].reset_index(drop=True)


@pytest.fixture(scope="module")
def bodies(world, sample) -> list[dict]:
    return [request_payload(world, row) for _, row in sample.iterrows()]


def test_health_is_open_everything_else_needs_the_key(service):
    assert httpx.get(f"{service.url}/healthz").json() == {"status": "ok"}
    for path in ("/v1/models", "/docs", "/openapi.json"):
        assert httpx.get(f"{service.url}{path}").status_code == 401
    assert httpx.post(f"{service.url}/v1/decisions", json={}).status_code == 401
    wrong = {"Authorization": "Bearer " + "y" * 32}
    assert httpx.post(f"{service.url}/v1/decisions", json={}, headers=wrong).status_code == 401
    assert service.client.get("/openapi.json").json()["paths"].keys() >= {"/v1/decisions", "/v1/decisions/batch"}
    models = service.client.get("/v1/models").json()
    assert models["credit_champion"]["version"] == "1" and models["credit_challenger"]["version"] == "2"
    assert models["challenger_mode"] == "off" and models["credit_champion"]["load_error"] is None


def test_served_decisions_equal_the_offline_pipeline(service, registry, world, sample, bodies):
    single = [service.decide(body) for body in bodies[:5]]
    batch = service.decide_batch(bodies)
    assert all(r.status_code == 200 for r in single) and batch.status_code == 200, batch.text[:500]
    served = batch.json()["decisions"]
    assert [s.json()["default_probability"] for s in single] == pytest.approx(
        [d["default_probability"] for d in served[:5]], abs=1e-12
    )

    fsv = feature_set_version()
    features = world_features(world, sample)
    credit = load_predictor(registry.uri, CREDIT_MODEL, "champion", fsv, kind="credit")
    uplift = load_predictor(registry.uri, "uplift", "champion", fsv, kind="uplift")
    pd_offline = credit.predict_proba(features)
    uplift_offline = uplift.effect(features)
    params = PolicyParams.model_validate(service.raw["applications"][0]["args"]["policy"])
    offline = decide(pd_offline, uplift_offline, sample["amount"], sample["term_days"], params)
    contributions = credit.contributions(features)
    descriptions = {f.name: f.description for f in FEATURES}

    assert [d["default_probability"] for d in served] == pytest.approx(pd_offline, abs=1e-9)
    assert [d["uplift"] for d in served] == pytest.approx(uplift_offline, abs=1e-9)
    assert [d["decision"] for d in served] == [o.decision for o in offline]
    assert [d["limit"] for d in served] == pytest.approx([o.limit for o in offline])
    assert [d["intervention"] for d in served] == [o.intervention for o in offline]
    assert {d["decision"] for d in served} == {"approve", "decline"}, "the sample should exercise both outcomes"
    for i, d in enumerate(served):
        expected = reason_codes(contributions.iloc[i].to_dict(), descriptions) if d["decision"] == "decline" else []
        assert [r["code"] for r in d["reason_codes"]] == [r.code for r in expected]
        assert len(d["reason_codes"]) <= 4
        assert d["model_versions"] == {"credit": "1", "credit_role": "champion", "uplift": uplift.version}


def test_in_process_baseline_decides_like_the_served_graph(service, registry, bodies):
    """The benchmark's baseline (same graph, one process, no Ray) answers what the service answers."""
    from fastapi.testclient import TestClient

    policy = service.raw["applications"][0]["args"]["policy"]
    client = TestClient(create_app(registry=registry.uri, credit_model=CREDIT_MODEL, policy=policy))
    assert gc.get_freeze_count() > 0, "the loaded models are kept out of the collector's full passes"
    local = client.post("/v1/decisions/batch", json={"applications": bodies}).json()["decisions"]
    served = service.decide_batch(bodies).json()["decisions"]
    for field in ("decision", "limit", "intervention", "default_probability", "uplift"):
        assert [d[field] for d in local] == pytest.approx([d[field] for d in served], abs=1e-9), field
    arrow = client.post(
        "/v1/decisions/batch", content=encode_payloads(bodies), headers={"Content-Type": ARROW_STREAM_MEDIA_TYPE}
    )
    assert [d["decision"] for d in arrow.json()["decisions"]] == [d["decision"] for d in local]
    assert client.post("/v1/decisions", json={"applicant": {}}).status_code == 422


def test_bad_requests_get_422_or_413_naming_the_field(service, bodies):
    body = bodies[0]
    cases = {
        "missing application": ({k: v for k, v in body.items() if k != "application"}, "application"),
        "negative amount": ({**body, "application": {**body["application"], "amount": -5}}, "amount"),
        "wrong type": ({**body, "application": {**body["application"], "term_days": "soon"}}, "term_days"),
        "too many events": ({**body, "events": body["events"][:1] * 20_000}, "events"),
        "unknown field": ({**body, "surprise": 1}, "surprise"),
    }
    for name, (payload, field) in cases.items():
        response = service.client.post("/v1/decisions", json=payload)
        assert response.status_code in (413, 422), name
        assert field in response.text, name
    malformed = service.client.post(
        "/v1/decisions", content=b'{"applicant": ', headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 422 and "json" in malformed.text.lower()
    oversized = service.client.post("/v1/decisions/batch", json={"applications": [body] * 101})
    assert oversized.status_code == 413 and "applications" in oversized.text
    assert service.client.post("/v1/decisions/batch", json={"applications": []}).status_code == 422


def test_an_arrow_batch_is_decided_exactly_like_the_same_json_batch(service, bodies):
    arrow = {"Content-Type": ARROW_STREAM_MEDIA_TYPE}
    response = service.client.post("/v1/decisions/batch", content=encode_payloads(bodies), headers=arrow)
    assert response.status_code == 200, response.text[:500]
    ACKNOWLEDGED.extend(d["request_id"] for d in response.json()["decisions"])
    from_json = service.decide_batch(bodies).json()["decisions"]
    without_ids = lambda decisions: [{k: v for k, v in d.items() if k != "request_id"} for d in decisions]  # noqa: E731
    assert without_ids(response.json()["decisions"]) == without_ids(from_json)
    BatchDecisionResponse.model_validate(response.json())  # the hand-serialised body keeps the documented schema

    bad = [bodies[0], {**bodies[1], "application": {**bodies[1]["application"], "amount": -5.0}}]
    refused = service.client.post("/v1/decisions/batch", content=encode_payloads(bad), headers=arrow)
    loc = ["body", "applications", 1, "application", "amount"]  # as the JSON batch names it
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == loc
    garbage = service.client.post("/v1/decisions/batch", content=b"not arrow at all", headers=arrow)
    assert garbage.status_code == 422 and "Arrow" in garbage.text
    too_many = service.client.post("/v1/decisions/batch", content=encode_payloads([bodies[0]] * 101), headers=arrow)
    assert too_many.status_code == 413 and "at most 100" in too_many.text
    csv = service.client.post("/v1/decisions/batch", content=b"a,b\n1,2", headers={"Content-Type": "text/csv"})
    assert csv.status_code == 415 and "Content-Type" in csv.text
    spec = service.client.get("/openapi.json").json()
    content = spec["paths"]["/v1/decisions/batch"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", ARROW_STREAM_MEDIA_TYPE}
    assert "applications" in spec["components"]["schemas"]["BatchDecisionRequest"]["properties"]
    single = spec["paths"]["/v1/decisions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    forms = [form["$ref"].rsplit("/", 1)[-1] for form in single["oneOf"]]  # the raw body, or by applicant id
    assert any("events" in spec["components"]["schemas"][form]["properties"] for form in forms)
    text = service.client.post("/v1/decisions", content=b"amount=5", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415 and "Content-Type" in text.text


def test_the_fused_graph_decides_exactly_like_the_composed_one(service, bodies):
    """`graph: fused` (every step inside the ingress replica) next to the composed app, same models."""
    import copy

    from ray import serve

    raw = copy.deepcopy(service.raw)
    fused = copy.deepcopy(raw["applications"][0])
    fused.update(name="credit_decision_fused", route_prefix="/fused")
    fused["args"]["graph"] = "fused"
    ingress = next(d for d in fused["deployments"] if d["name"] == "DecisionIngress")
    ingress.pop("autoscaling_config", None)
    fused["deployments"] = [{**ingress, "num_replicas": 2}]  # two replicas share one idempotency store
    raw["applications"].append(fused)
    path = service.workdir / "fused.yaml"
    path.write_text(yaml.safe_dump(raw))
    deploy(load_serve_config(path, pin_versions=True), timeout_s=240)
    try:
        assert set(serve.status().applications["credit_decision_fused"].deployments) == {
            "DecisionIngress",
            "IdempotencyStore",
        }
        without_id = lambda d: {k: v for k, v in d.items() if k != "request_id"}  # noqa: E731
        composed = [without_id(d) for d in service.decide_batch(bodies).json()["decisions"]]
        batch = service.client.post("/fused/v1/decisions/batch", json={"applications": bodies})
        assert batch.status_code == 200, batch.text[:500]
        assert [without_id(d) for d in batch.json()["decisions"]] == composed
        single = without_id(service.client.post("/fused/v1/decisions", json=bodies[0]).json())
        assert (
            single["decision"] == composed[0]["decision"] and single["model_versions"] == composed[0]["model_versions"]
        )
        assert single["default_probability"] == pytest.approx(
            composed[0]["default_probability"], abs=1e-12
        )  # one row vs a batch: BLAS order
        # concurrent single decisions are decided together (one pass of the graph), each its own answer
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda body: service.client.post("/fused/v1/decisions", json=body), bodies[:16]))
        assert [a.status_code for a in answers] == [200] * 16
        for answer, alone in zip(answers, composed[:16], strict=True):
            got = answer.json()
            assert (got["decision"], got["limit"]) == (alone["decision"], alone["limit"])
            assert [r["code"] for r in got["reason_codes"]] == [r["code"] for r in alone["reason_codes"]]
            assert got["default_probability"] == pytest.approx(alone["default_probability"], abs=1e-12)
        assert len({a.json()["request_id"] for a in answers}) == 16
        models = service.client.get("/fused/v1/models").json()
        assert models["credit_champion"]["version"] == "1" and models["uplift"]["load_error"] is None
        key = {"Idempotency-Key": f"fused-{uuid.uuid4().hex}"}  # keys are durable: a fresh one each run
        retries = [service.client.post("/fused/v1/decisions", json=bodies[4], headers=key).json() for _ in range(8)]
        assert len({r["request_id"] for r in retries}) == 1, "decided once, whichever replica answered"
        assert [r["replayed"] for r in retries] == [False] + [True] * 7
    finally:
        serve.delete("credit_decision_fused")


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_bad_inputs_never_get_a_5xx(service, bodies, data):
    """Mutate one field of a valid body (or send junk) and check the service answers 4xx or 200."""
    body = json.loads(json.dumps(bodies[1]))
    section = data.draw(st.sampled_from(["applicant", "application", "events", "loans", "root"]))
    if section == "root":
        payload = data.draw(JSON_VALUES)
    elif section in ("events", "loans") and body[section]:
        item = body[section][0]
        item[data.draw(st.sampled_from(sorted(item)))] = data.draw(JSON_VALUES)
        payload = body
    elif section in ("events", "loans"):
        body[section] = data.draw(JSON_VALUES)
        payload = body
    else:
        body[section][data.draw(st.sampled_from(sorted(body[section])))] = data.draw(JSON_VALUES)
        payload = body
    response = service.client.post("/v1/decisions", json=payload)
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        ACKNOWLEDGED.append(response.json()["request_id"])


def test_idempotent_retry_returns_the_same_decision(service, bodies):
    key = {"Idempotency-Key": f"retry-{uuid.uuid4().hex}"}  # keys are durable: a fresh one each run
    first = service.decide(bodies[2], **key)
    again = service.decide(bodies[2], **key)
    assert first.status_code == again.status_code == 200
    assert again.json() == {**first.json(), "replayed": True}
    conflict = service.decide(bodies[3], **key)
    assert conflict.status_code == 409 and "Idempotency-Key" in conflict.text


def test_policy_changes_live_without_restarting_replicas(service, bodies):
    before = service.client.get("/v1/models").json()
    approved_before = [d["decision"] for d in service.decide_batch(bodies).json()["decisions"]].count("approve")
    policy = service.raw["applications"][0]["args"]["policy"]
    service.deploy(user_configs={"DecisionPolicy": {**policy, "fee_rate_per_30_days": 0.6}})
    after = service.client.get("/v1/models").json()
    assert after["policy"]["params"]["fee_rate_per_30_days"] == 0.6
    for deployment in ("policy", "credit_champion", "uplift"):
        assert after[deployment]["replica"] == before[deployment]["replica"], deployment
    approved_after = [d["decision"] for d in service.decide_batch(bodies).json()["decisions"]].count("approve")
    assert approved_after > approved_before
    service.deploy(user_configs={"DecisionPolicy": policy})


def test_canary_split_follows_the_weight(service, bodies):
    weight, rounds = 0.3, 8
    ingress_before = service.client.get("/v1/models").json()["replica"]
    service.deploy(user_configs={"DecisionIngress": {"challenger_mode": "canary", "canary_weight": weight}})
    assert service.client.get("/v1/models").json()["replica"] == ingress_before, "changed in place"
    roles = []
    for _ in range(rounds):
        response = service.decide_batch(bodies)
        assert response.status_code == 200
        roles += [d["model_versions"]["credit_role"] for d in response.json()["decisions"]]
    n, k = len(roles), roles.count("challenger")
    assert abs(k - n * weight) <= 4 * math.sqrt(n * weight * (1 - weight)), (k, n)


def test_shadow_scores_and_logs_but_never_decides(service, bodies):
    service.deploy(user_configs={"DecisionIngress": {"challenger_mode": "shadow"}})
    responses = [service.decide(body) for body in bodies[:6]]
    assert all(r.json()["model_versions"]["credit_role"] == "champion" for r in responses)
    ids = {r.json()["request_id"] for r in responses}
    log = wait_for_log(service, lambda frame: ids <= set(frame.loc[frame["role"] == "shadow", "request_id"]))
    shadow = log[(log["role"] == "shadow") & log["request_id"].isin(ids)]
    assert set(shadow["credit_model_version"]) == {"2"} and set(shadow["credit_role"]) == {"challenger"}
    decided = log[(log["role"] == "decision") & log["request_id"].isin(ids)]
    assert set(decided["credit_model_version"]) == {"1"}


def test_model_swap_under_traffic_drops_nothing(service, registry, bodies):
    failures, versions, stop = [], [], threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=service.url, headers=AUTH, timeout=60) as client:
            while not stop.is_set():
                response = client.post("/v1/decisions", json=bodies[4])
                if response.status_code != 200:
                    failures.append(response.status_code)
                    continue
                ACKNOWLEDGED.append(response.json()["request_id"])
                versions.append(response.json()["model_versions"]["credit"])

    registry.set_alias(CREDIT_MODEL, "champion", "2")
    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        time.sleep(1.0)
        service.deploy(user_configs={"DecisionIngress": {"challenger_mode": "off"}})  # + the promotion
        deadline = time.monotonic() + 60
        while (not versions or versions[-1] != "2") and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join()
    assert failures == []
    assert versions[0] == "1" and versions[-1] == "2"
    assert "1" not in versions[versions.index("2") :], "once swapped, the old version is gone"


def test_a_model_that_fails_to_load_leaves_the_old_one_serving(service, registry, bodies):
    from ray import serve

    manifest = registry.manifest(CREDIT_MODEL, "1")
    metadata = ArtifactMetadata.model_validate(manifest.model_dump(include=set(ArtifactMetadata.model_fields)))
    broken = registry.register(CREDIT_MODEL, registry.read_verified(manifest), metadata).version  # same files
    weights = Path(registry.uri) / CREDIT_MODEL / broken / "coefficients.json"
    weights.write_text(weights.read_text().replace("[", "[1e3, ", 1))
    registry.set_alias(CREDIT_MODEL, "champion", broken)
    with pytest.raises(UserError, match="checksum"):
        service.deploy()
    assert "checksum" in serve.status().applications[APP].message
    response = service.decide(bodies[0])
    assert response.status_code == 200 and response.json()["model_versions"]["credit"] == "2"
    registry.set_alias(CREDIT_MODEL, "champion", "2")


def test_metrics_reach_rays_prometheus_endpoint(service):
    import ray

    port = ray._private.worker.global_worker.node.metrics_export_port
    deadline, text = time.monotonic() + 60, ""
    while time.monotonic() < deadline and "tala_decisions" not in text:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        time.sleep(2)
    assert 'outcome="approve"' in text or 'outcome="decline"' in text
    assert "tala_model_latency_ms" in text and "tala_batch_size" in text


def wait_for_log(service: Service, ready, timeout_s: float = 30.0) -> pd.DataFrame:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            log = read_prediction_log(str(service.workdir / "prediction_log"))
        except UserError:  # nothing flushed yet
            log = pd.DataFrame()
        if (len(log) and ready(log)) or time.monotonic() > deadline:
            return log
        time.sleep(0.5)


def test_graceful_shutdown_leaves_every_acknowledged_decision_in_the_log(service, bodies):
    from ray import serve

    service.deploy(log_flush_interval_s=300.0)  # new args: the old ingress replica shuts down (and flushes)
    last = [service.decide(body).json()["request_id"] for body in bodies[:10]]  # only a shutdown flush writes these
    serve.delete(APP)
    log = read_prediction_log(str(service.workdir / "prediction_log"))
    decided = log[log["role"] == "decision"]
    assert set(last) <= set(decided["request_id"])
    assert set(ACKNOWLEDGED) <= set(decided["request_id"])
    assert decided["request_id"].is_unique, "an idempotent retry is logged once"
    assert len(ACKNOWLEDGED) > 300
    row = decided.iloc[0]
    assert row["latency_ms"] > 0 and row["credit_model_version"]
    logged = list(decided["features"])
    assert all(set(FEATURE_NAMES) <= set(features) for features in logged), "every decision logs every feature"
    assert all(isinstance(features["tenure_days"], float) for features in logged)
