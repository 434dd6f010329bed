"""`build_app(args)`: the application builder named by `serve_configs/credit_decision*.yaml`."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from tala_ray.serving.args import AppArgs, RoutingConfig, default_log_uri
from tala_ray.serving.idempotency import IdempotencyStore, LedgerConfig
from tala_ray.serving.ingress import DecisionIngress, IngressSettings
from tala_ray.serving.steps import bound_steps, step_configs


def build_app(args: AppArgs | dict[str, Any]) -> Application:
    """The ingress and the graph's steps (`steps.py`) from validated args: the steps as deployments
    bound into the ingress, or (`graph: fused`) their configs, to run inside each ingress replica."""
    args = AppArgs.model_validate(args)
    configs = step_configs(args)
    routing = RoutingConfig(
        challenger_mode=args.challenger_mode,
        canary_weight=args.canary_weight,
        uplift_challenger_mode=args.uplift_challenger_mode,
        uplift_canary_weight=args.uplift_canary_weight,
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
    )
    ingress = DecisionIngress.options(user_config=routing.model_dump())
    store = IdempotencyStore.options(user_config=LedgerConfig(capacity=args.idempotency_cache_size).model_dump()).bind()
    steps = configs if args.graph == "fused" else bound_steps(configs)
    return ingress.bind(steps, store, settings.model_dump())
