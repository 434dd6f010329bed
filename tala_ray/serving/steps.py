"""The decision graph: its steps by name (`GraphSteps`), their configs, and the ONE order they run in.

`read_by_id` (applications by applicant id: the online store's raw tables), then
`decide`: features -> credit (each application by the credit model of its role: the champion, or
the challenger on a canary) and uplift, concurrently -> policy -> the declines' reason codes,
each explained by the credit model that scored it. Every layout runs this code:

- composed: each step its own deployment (`bound_steps`); the ingress gets their handles;
- fused: the same deployment classes inside the ingress replica (`local_steps`);
- the in-process baseline (`inprocess.py`): `local_steps` too, without Serve.

A step is called as `step.method.remote(...)` and awaited, a handle and a local step alike.
A new step is a deployment class (`deployments.py`), a field of `GraphSteps` and `StepConfigs`
built in `build_steps` and called in `decide` (here), and its arguments in `AppArgs` (`args.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tala_ray.core.errors import UserError
from tala_ray.features.columns import Columns, take
from tala_ray.features.definitions import feature_set_version
from tala_ray.features.online import ApplicationByIdRequest
from tala_ray.models.predictors import load_predictor
from tala_ray.policy.decision import PolicyParams
from tala_ray.serving import graph
from tala_ray.serving.args import AppArgs, ModelRef
from tala_ray.serving.deployments import CreditModel, DecisionPolicy, FeatureTransform, OnlineStoreStep, UpliftModel
from tala_ray.serving.local_graph import LocalStep
from tala_ray.serving.model_slot import ModelConfig
from tala_ray.serving.online_store import OnlineStoreConfig, StoreRead
from tala_ray.serving.records import decision_response

Role = Literal["champion", "challenger"]


class StepConfigs(BaseModel):
    """What each step is configured with (as a deployment: its `user_config`), the same in every layout."""

    model_config = ConfigDict(extra="forbid")

    credit: dict[Role, ModelConfig] = Field(description="Role -> the credit model that scores its applications.")
    uplift: ModelConfig
    policy: PolicyParams
    uplift_challenger: ModelConfig | None = Field(None, description="A second uplift model (canary or shadow).")
    online_store: OnlineStoreConfig = Field(default_factory=OnlineStoreConfig)


def _pinned_version(kind: str, ref: ModelRef, args: AppArgs, fsv: str) -> str:
    """Load the model once here (checksums, feature-set version) and return its exact version.

    A model that fails to load fails the deploy with the reason; the running application keeps
    serving. Pinning the exact version makes every replica load the same artifact. An uplift
    model's arms must be the policy's (`policy.intervention_costs`, in the same order).
    """
    try:
        predictor = load_predictor(
            args.registry_uri, ref.name, ref=ref.ref, expected_feature_set_version=fsv, kind=kind
        )
    except Exception as error:
        raise UserError(
            f"{kind} model {ref.name}@{ref.ref}: cannot be served: {type(error).__name__}: {error}"
        ) from error
    costed = tuple(args.policy.arm_costs())
    if kind == "uplift" and predictor.arms != costed:
        raise UserError(
            f"policy.intervention_costs: arms {list(costed)} are not uplift model {ref.name}@{predictor.version}'s "
            f"arms {list(predictor.arms)}"
        )
    return str(predictor.version)


def step_configs(args: AppArgs) -> StepConfigs:
    """Each step's config from the application's args, every model alias resolved to a version."""
    fsv = args.expected_feature_set_version or feature_set_version()

    def model(kind: str, role: Role, ref: ModelRef) -> ModelConfig:
        version = _pinned_version(kind, ref, args, fsv)
        return ModelConfig(
            registry_uri=args.registry_uri, name=ref.name, version=version, role=role, expected_feature_set_version=fsv
        )

    credit = {"champion": model("credit", "champion", args.credit_model)}
    if args.credit_challenger is not None:
        credit["challenger"] = model("credit", "challenger", args.credit_challenger)
    uplift = model("uplift", "champion", args.uplift_model)
    challenger = None if args.uplift_challenger is None else model("uplift", "challenger", args.uplift_challenger)
    return StepConfigs(
        credit=credit, uplift=uplift, policy=args.policy, online_store=args.online_store, uplift_challenger=challenger
    )


@dataclass(frozen=True)
class GraphSteps:
    """The graph's steps by name: deployment handles (composed layout) or local steps (fused, baseline)."""

    features: Any  # FeatureTransform: raw tables -> feature columns
    credit: dict[Role, Any]  # CreditModel by role: feature columns -> scores; declines' columns -> contributions
    uplift: Any  # UpliftModel: feature columns -> uplift
    policy: Any  # DecisionPolicy: policy items -> decisions; contributions -> reason codes
    online_store: Any  # OnlineStoreStep: applications by applicant id -> raw tables (`read_by_id`); events -> topic
    uplift_challenger: Any = None  # UpliftModel of the uplift challenger (canary or shadow), if any


StepMaker = Callable[[Any, str, dict[str, Any] | None], Any]
"""(deployment, its name in the application, its `user_config` or None) -> the step."""


def build_steps(configs: StepConfigs, make: StepMaker) -> GraphSteps:
    """Every step of the graph, each made by `make` from its deployment and config."""
    return GraphSteps(
        features=make(FeatureTransform, "FeatureTransform", None),
        credit={
            role: make(CreditModel, f"Credit{role.title()}", config.model_dump(mode="json"))
            for role, config in configs.credit.items()
        },
        uplift=make(UpliftModel, "UpliftModel", configs.uplift.model_dump(mode="json")),
        policy=make(DecisionPolicy, "DecisionPolicy", configs.policy.model_dump(mode="json")),
        online_store=make(OnlineStoreStep, "OnlineStore", configs.online_store.model_dump(mode="json")),
        uplift_challenger=None
        if configs.uplift_challenger is None
        else make(UpliftModel, "UpliftChallenger", configs.uplift_challenger.model_dump(mode="json")),
    )


def bound_steps(configs: StepConfigs) -> GraphSteps:
    """The steps as bound deployments (composed layout): bound into the ingress, Serve hands it their handles."""

    def bind(deployment: Any, name: str, user_config: dict[str, Any] | None) -> Any:
        options = {"name": name} | ({} if user_config is None else {"user_config": user_config})
        return deployment.options(**options).bind()

    return build_steps(configs, bind)


def local_steps(configs: StepConfigs) -> GraphSteps:
    """The steps as the deployments' classes in this process (fused layout, in-process baseline)."""
    return build_steps(configs, lambda deployment, _name, user_config: LocalStep(deployment, user_config))


@dataclass(frozen=True)
class Decided:
    """One pass of the graph over some applications: each step's results, one per application."""

    features: Columns
    terms: tuple[np.ndarray, np.ndarray]  # requested amounts and terms (`graph.application_terms`)
    credit: list[dict[str, Any]]
    uplift: list[dict[str, Any]]
    decisions: list[dict[str, Any]]

    def responses(self, request_ids: list[str]) -> list[dict[str, Any]]:
        """The decisions in `DecisionResponse`'s shape, one request id each."""
        parts = zip(request_ids, self.decisions, self.credit, self.uplift, strict=True)
        return [decision_response(*part) for part in parts]


async def decide(
    steps: GraphSteps, tables: graph.RawTables, roles: list[Role], uplift_roles: list[Role] | None = None
) -> Decided:
    """The applications of the raw tables through the graph; `roles`: which credit model scores each;
    `uplift_roles` (an uplift canary): which uplift model's effects decide each (each effect then names
    its role), else the champion's for all."""
    features = await steps.features.transform.remote(tables)
    uplift = _send_uplift(steps, features, uplift_roles)  # under way while the credit models score (handles)
    credit = await _by_role(steps, "score", features, roles, graph.merge_rows)
    return await _policy(steps, features, graph.application_terms(tables), roles, credit, await _received(uplift))


def _send_uplift(steps: GraphSteps, features: Columns, roles: list[Role] | None) -> list[tuple[Any, ...]]:
    """The uplift calls, sent: the champion's for every row, or one call per role of `roles`."""
    if roles is None:
        return [(None, None, steps.uplift.effect.remote(features))]
    groups = {role: [i for i, r in enumerate(roles) if r == role] for role in dict.fromkeys(roles)}
    model = {"champion": steps.uplift, "challenger": steps.uplift_challenger}
    return [
        (role, positions, model[role].effect.remote(features if len(groups) == 1 else take(features, positions)))
        for role, positions in groups.items()
    ]


async def _received(calls: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The uplift calls' effects in row order (each naming its role when roles were given)."""
    if calls[0][0] is None:
        return await calls[0][2]
    parts = [(positions, [effect | {"role": role} for effect in await call]) for role, positions, call in calls]
    return parts[0][1] if len(parts) == 1 else graph.merge_rows(parts, sum(len(p) for p, _ in parts))


async def shadow_uplift(steps: GraphSteps, decided: Decided) -> Decided:
    """The same applications decided with the uplift challenger's effects (uplift shadow): the features
    and credit scores as they were; each effect names its role."""
    effects = await steps.uplift_challenger.effect.remote(decided.features)
    uplift = [effect | {"role": "challenger"} for effect in effects]
    roles = [score["role"] for score in decided.credit]
    return await _policy(steps, decided.features, decided.terms, roles, decided.credit, uplift)


async def read_by_id(steps: GraphSteps, requests: list[ApplicationByIdRequest]) -> StoreRead:
    """The raw tables of applications by applicant id, read from the online store (or why not): then
    `decide` them like any raw tables."""
    return await steps.online_store.read.remote(requests)


async def rescore(steps: GraphSteps, decided: Decided, roles: list[Role]) -> Decided:
    """The same applications decided again with the credit models of `roles` (shadow scoring):
    `decide` from the credit step on, the features and uplift taken as they were."""
    credit = await _by_role(steps, "score", decided.features, roles, graph.merge_rows)
    return await _policy(steps, decided.features, decided.terms, roles, credit, decided.uplift)


async def _policy(
    steps: GraphSteps,
    features: Columns,
    terms: tuple[np.ndarray, np.ndarray],
    roles: list[Role],
    credit: list[dict[str, Any]],
    uplift: list[dict[str, Any]],
) -> Decided:
    """The policy's decisions; each decline explained by the credit model that scored it."""
    decisions = await steps.policy.decide.remote(graph.policy_items(*terms, credit, uplift))
    positions = graph.declined(decisions)
    if positions:
        contributions = await _by_role(
            steps, "explain", take(features, positions), [roles[i] for i in positions], graph.merge_contributions
        )
        reasons = await steps.policy.reasons.remote(contributions)
        for position, codes in zip(positions, reasons, strict=True):
            decisions[position]["reason_codes"] = codes
    return Decided(features, terms, credit, uplift, decisions)


async def _by_role(
    steps: GraphSteps, method: str, features: Columns, roles: list[Role], merge: Callable[..., Any]
) -> Any:
    """`score` or `explain` of each row by the credit model its role names (one call per model, all
    sent before the first is awaited; `merge` puts the groups' results back in row order when there
    is more than one)."""
    groups = {role: [i for i, r in enumerate(roles) if r == role] for role in set(roles)}
    if len(groups) == 1:
        return await getattr(steps.credit[roles[0]], method).remote(features)
    calls = [
        (positions, getattr(steps.credit[role], method).remote(take(features, positions)))
        for role, positions in groups.items()
    ]
    return merge([(positions, await result) for positions, result in calls], len(roles))
