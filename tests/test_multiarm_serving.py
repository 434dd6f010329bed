"""Several arms and an uplift challenger in serving: the graph (`steps.decide`) on local steps, then the
service on Ray Serve over real HTTP (serve_configs/credit_decision_multiarm.yaml): every option's
expected profit and arm returned, the challenger's effects logged beside the champion's in shadow and
the decisions they would change counted, a canary share decided with the challenger's effects."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tala_ray.core.errors import UserError
from tala_ray.core.registry import ArtifactMetadata, Registry
from tala_ray.data.design import REMINDER, Design
from tala_ray.data.schema import INTERVENTION
from tala_ray.data.world import simulate_chunk
from tala_ray.features.definitions import compute_features, feature_set_version
from tala_ray.features.online import request_columns
from tala_ray.models.credit import LogisticCreditModel
from tala_ray.models.predictors import load_predictor
from tala_ray.models.uplift import TLearnerUplift, XLearnerUplift
from tala_ray.policy.decision import PolicyParams
from tala_ray.policy.decision import decide as policy_decide
from tala_ray.serving.args import AppArgs, ModelRef
from tala_ray.serving.graph import decision_changes
from tala_ray.serving.schemas import DecisionRequest, DecisionResponse
from tala_ray.serving.steps import decide, local_steps, shadow_uplift, step_configs
from tala_ray.traffic.replay import request_payload
from tala_ray.tuning.spec import load_experiment_spec

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "serve_configs" / "credit_decision_multiarm.yaml"
COSTS = {REMINDER: 0.2, INTERVENTION: 1.0}
POLICY = PolicyParams(fee_rate_per_30_days=0.2, intervention_costs=COSTS)
API_KEY = "multiarm-test-key-" + "m" * 16


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    tables = simulate_chunk(5, 0, 0, 1_600, Design(arms=(REMINDER, INTERVENTION)))
    return {name: table.to_pandas() for name, table in tables.items() if name != "truth"}


def _features(world: dict[str, pd.DataFrame], applications: pd.DataFrame) -> pd.DataFrame:
    ids = applications["applicant_id"]
    tables = [world[name][world[name]["applicant_id"].isin(ids)] for name in ("applicants", "events", "loans")]
    features = compute_features(applications, *tables)
    return features.set_index("application_id").loc[applications["application_id"]].reset_index()


@pytest.fixture(scope="module")
def registry(world, tmp_path_factory) -> Registry:
    """credit_pd (logistic); uplift_multiarm v1 (T-learner, champion) and v2 (X-learner, challenger) over
    three options; uplift (one arm) for the mismatch."""
    fsv = feature_set_version()
    registry = Registry(str(tmp_path_factory.mktemp("registry")))
    train = world["applications"].sort_values("application_id").iloc[:1200]
    features = _features(world, train)
    names = [c for c in features.columns if c != "application_id"]
    X, y, t = features[names], 1 - train["defaulted"].to_numpy(), train["treatment"].to_numpy()
    credit = LogisticCreditModel(C=1.0).fit(X, train["defaulted"].to_numpy())
    metadata = ArtifactMetadata(kind="credit", family="logistic", feature_set_version=fsv, feature_names=names)
    registry.set_alias("credit_pd", "champion", registry.register("credit_pd", credit.to_files(), metadata).version)
    for alias, model in (
        ("champion", TLearnerUplift(nuisance_n_estimators=30, cv=2)),
        ("challenger", XLearnerUplift(nuisance_n_estimators=30, final_n_estimators=30, cv=2)),
    ):
        model.fit(y, t, X=X)
        metadata = ArtifactMetadata(
            kind="uplift",
            family=model.family,
            feature_set_version=fsv,
            feature_names=names,
            extra={"intervention_costs": COSTS},
        )
        registry.set_alias(
            "uplift_multiarm", alias, registry.register("uplift_multiarm", model.to_files(), metadata).version
        )
    one_arm = TLearnerUplift(nuisance_n_estimators=20, cv=2).fit(y, np.minimum(t, 1), X=X)
    metadata = ArtifactMetadata(kind="uplift", family=one_arm.family, feature_set_version=fsv, feature_names=names)
    registry.set_alias("uplift", "champion", registry.register("uplift", one_arm.to_files(), metadata).version)
    return registry


@pytest.fixture(scope="module")
def sample(world) -> pd.DataFrame:
    return world["applications"].sort_values("application_id").iloc[1200:1280].reset_index(drop=True)


@pytest.fixture(scope="module")
def bodies(world, sample) -> list[dict]:
    return [request_payload(world, row) for _, row in sample.iterrows()]


def _args(registry: Registry, **changes: object) -> AppArgs:
    args = {
        "registry_uri": registry.uri,
        "credit_model": ModelRef(name="credit_pd"),
        "uplift_model": ModelRef(name="uplift_multiarm"),
        "uplift_challenger": ModelRef(name="uplift_multiarm", ref="challenger"),
        "policy": POLICY,
    }
    return AppArgs(**(args | changes))


def test_the_served_arms_and_costs_are_the_experiments(registry):
    served = yaml.safe_load(CONFIG.read_text())["applications"][0]["args"]["policy"]["intervention_costs"]
    assert served == load_experiment_spec(REPO / "experiments" / "uplift_multiarm.yaml").model.intervention_costs
    assert load_predictor(registry.uri, "uplift_multiarm", kind="uplift").arms == tuple(COSTS)


def test_each_applicant_gets_the_option_worth_most_and_every_options_profit(registry, world, sample, bodies):
    steps = local_steps(step_configs(_args(registry)))
    tables = request_columns([DecisionRequest.model_validate(body) for body in bodies])
    decided = asyncio.run(decide(steps, tables, ["champion"] * len(bodies)))
    responses = decided.responses([str(i) for i in range(len(bodies))])
    for response in responses:
        DecisionResponse.model_validate(response)  # the API's shape
        assert list(response["expected_profit_by_option"]) == ["none", *COSTS]
        assert set(response["uplift_by_arm"]) == set(COSTS) and response["intervention"] in (None, *COSTS)
        assert response["uplift"] == max(response["uplift_by_arm"].values())
    features = _features(world, sample)
    credit = load_predictor(registry.uri, "credit_pd", kind="credit").predict_proba(features)
    arms = load_predictor(registry.uri, "uplift_multiarm", kind="uplift").arm_effects(features)
    offline = policy_decide(credit, arms, sample["amount"], sample["term_days"], POLICY)
    assert [r["intervention"] for r in responses] == [d.intervention for d in offline]
    assert [r["expected_profit"] for r in responses] == pytest.approx([d.expected_profit for d in offline])
    assert {r["intervention"] for r in responses} >= {REMINDER, INTERVENTION}


def test_arms_the_policy_does_not_cost_are_refused_at_deploy(registry):
    with pytest.raises(UserError, match="policy.intervention_costs: arms \\['reminder_ontime_discount'\\] are not"):
        step_configs(_args(registry, policy=PolicyParams()))
    with pytest.raises(UserError, match="are not uplift model uplift@1's arms \\['reminder_ontime_discount'\\]"):
        step_configs(_args(registry, uplift_model=ModelRef(name="uplift")))
    with pytest.raises(ValueError, match="uplift_challenger: required when uplift_challenger_mode is 'shadow'"):
        _args(registry, uplift_challenger=None, uplift_challenger_mode="shadow")


def test_the_uplift_shadow_and_canary_decide_with_the_challengers_effects(registry, bodies):
    steps = local_steps(step_configs(_args(registry)))
    tables = request_columns([DecisionRequest.model_validate(body) for body in bodies])
    count = len(bodies)
    champion = asyncio.run(decide(steps, tables, ["champion"] * count))
    shadow = asyncio.run(shadow_uplift(steps, champion))
    alone = asyncio.run(decide(steps, tables, ["champion"] * count, ["challenger"] * count))
    ids = [str(i) for i in range(count)]
    assert shadow.responses(ids) == alone.responses(ids), "the shadow decides as the challenger would alone"
    assert shadow.credit is champion.credit and shadow.features is champion.features, "reused, not recomputed"
    assert {r["model_versions"]["uplift"] for r in shadow.responses(ids)} == {"2"}
    changes = decision_changes(champion.decisions, shadow.decisions)
    assert set(changes) <= {"none", "decision", "intervention", "limit"} and "intervention" in changes
    assert decision_changes(champion.decisions, champion.decisions) == ["none"] * count
    roles = ["challenger" if i % 4 == 0 else "champion" for i in range(count)]
    canary = asyncio.run(decide(steps, tables, ["champion"] * count, roles)).responses(ids)
    for i, response in enumerate(canary):
        expected = (alone if roles[i] == "challenger" else champion).responses(ids)[i]
        assert response["model_versions"]["uplift_role"] == roles[i]
        assert response["intervention"] == expected["intervention"] and response["uplift"] == expected["uplift"]


@pytest.fixture(scope="module")
def service(ray_cluster, registry, tmp_path_factory):
    """serve_configs/credit_decision_multiarm.yaml on the session's cluster, real HTTP on a free port."""
    import httpx
    from ray import serve

    from tala_ray.core.net import free_port
    from tala_ray.serving.launch import deploy, load_serve_config

    workdir = tmp_path_factory.mktemp("multiarm_service")
    (workdir / "api_keys").write_text(API_KEY + "\n")
    raw = yaml.safe_load(CONFIG.read_text())
    port = free_port()
    raw["http_options"]["port"] = port
    raw["applications"][0]["deployments"][0]["ray_actor_options"] = {"num_cpus": 0.05}
    raw["applications"][0]["args"].update(
        registry_uri=registry.uri,
        api_key_file=str(workdir / "api_keys"),
        prediction_log_uri=str(workdir / "prediction_log"),
        log_flush_interval_s=0.5,
        policy={**raw["applications"][0]["args"]["policy"], "fee_rate_per_30_days": 0.2},
    )

    def redeploy(ingress: dict | None = None) -> None:
        if ingress is not None:
            raw["applications"][0]["deployments"][0]["user_config"] = ingress
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(raw))
        deploy(load_serve_config(path, pin_versions=True), timeout_s=240)

    redeploy()
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
    )
    yield client, redeploy, workdir / "prediction_log"
    client.close()
    serve.shutdown()


def _log(root: Path, ready, timeout_s: float = 30.0) -> pd.DataFrame:
    from tala_ray.monitoring.prediction_log import read_prediction_log

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            log = read_prediction_log(str(root))
        except UserError:  # nothing flushed yet
            log = pd.DataFrame()
        if (len(log) and ready(log)) or time.monotonic() > deadline:
            return log
        time.sleep(0.5)


@pytest.mark.ray
def test_the_service_returns_every_option_and_logs_the_uplift_shadow_beside_the_champion(service, bodies):
    client, _, log_root = service
    models = client.get("/v1/models").json()
    assert models["uplift_challenger_mode"] == "shadow" and models["uplift_challenger"]["version"] == "2"
    single = client.post("/v1/decisions", json=bodies[0])
    assert single.status_code == 200, single.text
    assert list(single.json()["expected_profit_by_option"]) == ["none", *COSTS]
    batch = client.post("/v1/decisions/batch", json={"applications": bodies})
    assert batch.status_code == 200
    decisions = batch.json()["decisions"]
    assert all(d["model_versions"]["uplift"] == "1" for d in decisions), "the shadow never decides"
    ids = {d["request_id"] for d in decisions} | {single.json()["request_id"]}
    log = _log(log_root, lambda frame: ids <= set(frame.loc[frame["role"] == "uplift_shadow", "request_id"]))
    shadow = log[(log["role"] == "uplift_shadow") & log["request_id"].isin(ids)].set_index("request_id")
    champion = log[(log["role"] == "decision") & log["request_id"].isin(ids)].set_index("request_id")
    assert set(shadow["uplift_model_version"]) == {"2"} and set(champion["uplift_model_version"]) == {"1"}
    assert set(shadow["uplift_role"]) == {"challenger"}
    logged = shadow["changed_by_uplift_challenger"]
    columns = ["decision", "intervention", "limit"]
    expected = decision_changes(
        champion.loc[shadow.index, columns].astype(object).where(lambda f: f.notna(), None).to_dict("records"),
        shadow[columns].astype(object).where(lambda f: f.notna(), None).to_dict("records"),
    )
    assert logged.tolist() == expected and "intervention" in expected
    print(f"\nuplift shadow: {logged.value_counts().to_dict()} of {len(logged)}")


@pytest.mark.ray
def test_an_uplift_canary_decides_a_share_with_the_challengers_effects(service, bodies):
    client, redeploy, _ = service
    weight, rounds = 0.3, 6
    redeploy({"uplift_challenger_mode": "canary", "uplift_canary_weight": weight})
    roles = []
    for _ in range(rounds):
        response = client.post("/v1/decisions/batch", json={"applications": bodies})
        assert response.status_code == 200
        for decision in response.json()["decisions"]:
            role = decision["model_versions"]["uplift_role"]
            assert decision["model_versions"]["uplift"] == {"champion": "1", "challenger": "2"}[role]
            roles.append(role)
    n, k = len(roles), roles.count("challenger")
    assert abs(k - n * weight) <= 4 * math.sqrt(n * weight * (1 - weight)), (k, n)
