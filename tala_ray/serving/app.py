"""`build_app(args)`: the application builder named by `serve_configs/credit_decision*.yaml`."""

from __future__ import annotations

import logging
from typing import Any

from ray.serve import Application

from tala_ray.core.errors import UserError
from tala_ray.models.predictors import load_predictor
from tala_ray.serving.args import AppArgs, ModelRef, RoutingConfig
from tala_ray.serving.deployments import CreditModel, DecisionPolicy, FeatureTransform, UpliftModel
from tala_ray.serving.idempotency import IdempotencyStore, LedgerConfig
from tala_ray.serving.ingress import DecisionIngress, IngressSettings
from tala_ray.serving.local_graph import LocalGraphConfig
from tala_ray.serving.model_slot import ModelConfig

log = logging.getLogger(__name__)


def resolve_model(kind: str, ref: ModelRef, args: AppArgs, feature_set_version: str) -> str:
    """Load the model once here (checksums, feature-set version) and return its exact version.

    A model that fails to load fails the deploy with the reason; the running application keeps
    serving. Pinning the exact version makes every replica load the same artifact.
    """
    try:
        predictor = load_predictor(
            args.registry_uri, ref.name, ref=ref.ref, expected_feature_set_version=feature_set_version, kind=kind
        )
    except Exception as error:
        raise UserError(
            f"{kind} model {ref.name}@{ref.ref}: cannot be served: {type(error).__name__}: {error}"
        ) from error
    return str(predictor.version)


def model_user_config(kind: str, role: str, ref: ModelRef, args: AppArgs, feature_set_version: str) -> dict[str, Any]:
    """The `user_config` of one model deployment, with the alias resolved to a version."""
    return ModelConfig(
        registry_uri=args.registry_uri,
        name=ref.name,
        version=resolve_model(kind, ref, args, feature_set_version),
        role=role,
        expected_feature_set_version=feature_set_version,
    ).model_dump(mode="json")


def default_log_uri() -> str:
    from tala_ray.core.settings import get_settings

    return f"{get_settings().data_root}/prediction_log"


def build_app(args: AppArgs | dict[str, Any]) -> Application:
    """Compose ingress -> features -> credit (+ challenger) and uplift -> policy from validated args
    (as deployments, or all inside the ingress with `graph: fused`)."""
    from tala_ray.features.definitions import feature_set_version

    args = AppArgs.model_validate(args)
    fsv = args.expected_feature_set_version or feature_set_version()
    steps = LocalGraphConfig(
        credit_champion=model_user_config("credit", "champion", args.credit_model, args, fsv),
        credit_challenger=None
        if args.credit_challenger is None
        else model_user_config("credit", "challenger", args.credit_challenger, args, fsv),
        uplift=model_user_config("uplift", "champion", args.uplift_model, args, fsv),
        policy=args.policy.model_dump(mode="json"),
    )
    routing = RoutingConfig(
        challenger_mode=args.challenger_mode,
        canary_weight=args.canary_weight,
        max_batch_applications=args.max_batch_applications,
        batching=args.decision_batching,
    )
    settings = IngressSettings(
        prediction_log_uri=args.prediction_log_uri or default_log_uri(),
        log_flush_interval_s=args.log_flush_interval_s,
        log_max_buffer_rows=args.log_max_buffer_rows,
        api_key_env=args.api_key_env,
        api_key_file=args.api_key_file,
        max_body_bytes=args.max_body_bytes,
        local_graph=steps if args.graph == "fused" else None,
    )
    ingress = DecisionIngress.options(user_config=routing.model_dump())
    store = IdempotencyStore.options(user_config=LedgerConfig(capacity=args.idempotency_cache_size).model_dump()).bind()
    if args.graph == "fused":
        return ingress.bind(None, None, None, None, None, store, settings.model_dump())
    challenger = None
    if steps.credit_challenger is not None:
        challenger = CreditModel.options(name="CreditChallenger", user_config=steps.credit_challenger).bind()
    return ingress.bind(
        FeatureTransform.bind(),
        CreditModel.options(name="CreditChampion", user_config=steps.credit_champion).bind(),
        challenger,
        UpliftModel.options(user_config=steps.uplift).bind(),
        DecisionPolicy.options(user_config=steps.policy).bind(),
        store,
        settings.model_dump(),
    )
