"""The decision graph's one order (`steps.decide`, `steps.rescore`) on local steps: each application
scored and explained by the credit model of its role; real models in a temporary registry, no Ray."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from tala_ray.core.registry import ArtifactMetadata, Registry
from tala_ray.data.world import simulate_chunk
from tala_ray.features.definitions import FEATURES, compute_features, feature_set_version
from tala_ray.features.online import request_columns
from tala_ray.models.credit import LogisticCreditModel
from tala_ray.models.predictors import load_predictor
from tala_ray.models.uplift import TLearnerUplift
from tala_ray.policy.decision import PolicyParams, reason_codes
from tala_ray.serving.args import AppArgs, ModelRef
from tala_ray.serving.launch import live_config_models
from tala_ray.serving.schemas import DecisionRequest
from tala_ray.serving.steps import StepConfigs, build_steps, decide, local_steps, rescore, step_configs
from tala_ray.traffic.replay import request_payload

POLICY = PolicyParams(fee_rate_per_30_days=0.2)  # declines and approvals both, on this small world


def features_of(world: dict[str, pd.DataFrame], applications: pd.DataFrame) -> pd.DataFrame:
    ids = applications["applicant_id"]
    tables = [world[name][world[name]["applicant_id"].isin(ids)] for name in ("applicants", "events", "loans")]
    features = compute_features(applications, *tables)
    return features.set_index("application_id").loc[applications["application_id"]].reset_index()


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    return {name: table.to_pandas() for name, table in simulate_chunk(5, 0, 0, 700).items() if name != "truth"}


@pytest.fixture(scope="module")
def configs(world, tmp_path_factory) -> StepConfigs:
    """Credit v1 (champion) and v2 (challenger, another regularisation) and an uplift model."""
    fsv = feature_set_version()
    registry = Registry(str(tmp_path_factory.mktemp("registry")))
    train = world["applications"].sort_values("application_id").iloc[:500]
    features = features_of(world, train)
    names = [c for c in features.columns if c != "application_id"]
    for C in (1.0, 0.01):
        model = LogisticCreditModel(C=C).fit(features[names], train["defaulted"].to_numpy())
        metadata = ArtifactMetadata(kind="credit", family="logistic", feature_set_version=fsv, feature_names=names)
        registry.register("credit", model.to_files(), metadata)
    uplift = TLearnerUplift(nuisance_n_estimators=30, cv=2).fit(
        1 - train["defaulted"].to_numpy(), train["treatment"].to_numpy(), X=features[names]
    )
    metadata = ArtifactMetadata(kind="uplift", family=uplift.family, feature_set_version=fsv, feature_names=names)
    registry.register("uplift", uplift.to_files(), metadata)
    args = AppArgs(
        registry_uri=registry.uri,
        credit_model=ModelRef(name="credit", ref="1"),
        credit_challenger=ModelRef(name="credit", ref="2"),
        uplift_model=ModelRef(name="uplift", ref="latest"),
        policy=POLICY,
    )
    return step_configs(args)


@pytest.fixture(scope="module")
def sample(world) -> pd.DataFrame:
    return world["applications"].sort_values("application_id").iloc[500:560].reset_index(drop=True)


@pytest.fixture(scope="module")
def tables(world, sample):
    """The sample's raw tables, as the ingress builds them from JSON requests."""
    bodies = [DecisionRequest.model_validate(request_payload(world, row)) for _, row in sample.iterrows()]
    return request_columns(bodies)


def test_the_configs_pin_versions_and_build_the_deployments_the_config_files_name(configs):
    assert {role: config.version for role, config in configs.credit.items()} == {"champion": "1", "challenger": "2"}
    assert configs.uplift.version == "1" and configs.policy == POLICY
    made = build_steps(configs, lambda deployment, name, config: (deployment.name, name, config))
    named = [made.features, *made.credit.values(), made.uplift, made.policy]
    assert [name for _, name, _ in named] == [
        "FeatureTransform",
        "CreditChampion",
        "CreditChallenger",
        "UpliftModel",
        "DecisionPolicy",
    ]
    assert {name for _, name, config in named if config is not None} <= set(live_config_models())
    assert made.credit["challenger"][2]["role"] == "challenger" and made.features[2] is None


def test_each_application_is_scored_and_explained_by_the_model_of_its_role(configs, world, sample, tables):
    steps = local_steps(configs)
    roles = ["challenger" if i % 3 == 0 else "champion" for i in range(len(sample))]
    decided = asyncio.run(decide(steps, tables, roles))

    features = features_of(world, sample)
    descriptions = {f.name: f.description for f in FEATURES}
    uri = configs.uplift.registry_uri
    for role, version in (("champion", "1"), ("challenger", "2")):
        predictor = load_predictor(uri, "credit", version, kind="credit")
        rows = [i for i, r in enumerate(roles) if r == role]
        expected = predictor.predict_proba(features.iloc[rows])
        assert [decided.credit[i]["default_probability"] for i in rows] == pytest.approx(expected, abs=1e-12)
        assert {(decided.credit[i]["version"], decided.credit[i]["role"]) for i in rows} == {(version, role)}
        declined = [i for i in rows if decided.decisions[i]["decision"] == "decline"]
        assert declined, f"the sample should have declines scored by the {role}"
        for i in declined:
            contributions = predictor.contributions(features.iloc[[i]]).iloc[0].to_dict()
            expected_codes = [r.code for r in reason_codes(contributions, descriptions, POLICY.max_reason_codes)]
            assert [r["code"] for r in decided.decisions[i]["reason_codes"]] == expected_codes
    assert {d["decision"] for d in decided.decisions} == {"approve", "decline"}
    uplift = load_predictor(uri, "uplift", "1", kind="uplift").effect(features)
    assert [u["uplift"] for u in decided.uplift] == pytest.approx(uplift, abs=1e-12)
    ids = [f"b:{i}" for i in range(len(sample))]
    assert [r["request_id"] for r in decided.responses(ids)] == ids


def test_shadow_scoring_decides_as_the_challenger_alone_would(configs, tables, sample):
    steps = local_steps(configs)
    champion = ["champion"] * len(sample)
    decided = asyncio.run(decide(steps, tables, champion))
    shadow = asyncio.run(rescore(steps, decided, ["challenger"] * len(sample)))
    alone = asyncio.run(decide(steps, tables, ["challenger"] * len(sample)))
    ids = [str(i) for i in range(len(sample))]
    assert shadow.responses(ids) == alone.responses(ids)
    assert shadow.features is decided.features and shadow.uplift is decided.uplift, "reused, not recomputed"
    assert shadow.responses(ids) != decided.responses(ids)
