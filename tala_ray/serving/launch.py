"""Reading a Serve config file and deploying it (what `tala-ray serve` does, like `serve run`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tala_ray.core.errors import UserError
from tala_ray.core.signing import key_environment
from tala_ray.core.specs import read_yaml_mapping, validation_problems
from tala_ray.serving.args import AppArgs, RoutingConfig

BUILDER_IMPORT_PATH = "tala_ray.serving.app:build_app"
LOOPBACK = "127.0.0.1"

# Ray Serve's fast ingress (measured in docs/serving-performance.md): HAProxy on the config's
# http_options address, forwarding to the ingress replicas' own ports (direct ingress), handle
# calls over gRPC, buffered request-path logs, GC frozen after start-up, user code on each
# replica's own event loop. Read by Serve's
# processes when they start, so it must be in the cluster's environment: `tala-ray serve
# --haproxy` and `tala-ray demo --haproxy` set it for the local cluster they start; on a real
# cluster `cluster.yaml` sets it on every node. (Not the whole RAY_SERVE_THROUGHPUT_OPTIMIZED
# bundle: in the no-op study it stopped the ingress from autoscaling; docs/serving-performance.md.)
HAPROXY_ENVIRONMENT = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    "RAY_SERVE_FREEZE_GC_ON_STARTUP": "1",
    # user code on the replica's own event loop: no hand-off to a second thread (and its GIL
    # ping-pong) per request; halves p50 at half load (docs/serving-performance.md)
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
}


def use_haproxy_environment(address: str | None) -> list[str]:
    """Put `HAPROXY_ENVIRONMENT` into this process's environment (a local cluster started from it
    inherits it); values the user set already win. Returns notes for the user."""
    import os

    for name, value in HAPROXY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    notes = [
        "HAProxy ingress: the ingress replicas' own ports (30000-31000) and HAProxy's stats (8404) and "
        "metrics (9101) ports listen on every interface; keep them behind a firewall (the API key still guards /v1)."
    ]
    if address or os.environ.get("RAY_ADDRESS"):
        notes.append(
            "--haproxy joins an existing cluster: its nodes must have been started with these variables set: "
            + " ".join(f"{k}={v}" for k, v in HAPROXY_ENVIRONMENT.items())
        )
    return notes


MODEL_ARGS = ("credit_model", "credit_challenger", "uplift_model", "uplift_challenger")


def live_config_models() -> dict[str, type]:
    """The deployments whose `user_config` a config file may set (changed in place, no restart)."""
    from tala_ray.policy.decision import PolicyParams
    from tala_ray.serving.idempotency import LedgerConfig
    from tala_ray.serving.model_slot import ModelConfig

    return {
        "DecisionIngress": RoutingConfig,
        "DecisionPolicy": PolicyParams,
        "CreditChampion": ModelConfig,
        "CreditChallenger": ModelConfig,
        "UpliftModel": ModelConfig,
        "UpliftChallenger": ModelConfig,
        "IdempotencyStore": LedgerConfig,
    }


def check_user_configs(application: dict[str, Any], args: AppArgs, index: int) -> None:
    """Validate `deployments[].user_config` overrides with the same models the replicas use."""
    models = live_config_models()
    for position, deployment in enumerate(application.get("deployments") or []):
        if "user_config" not in deployment:
            continue
        where = f"applications[{index}].deployments[{position}].user_config"
        schema = models.get(deployment.get("name"))
        if schema is None:
            raise UserError(f"{where}: deployment {deployment.get('name')!r} takes no user_config")
        if args.graph == "fused" and deployment.get("name") not in ("DecisionIngress", "IdempotencyStore"):
            raise UserError(
                f"{where}: with args.graph 'fused' only DecisionIngress is a deployment; set the step in args instead"
            )
        try:
            config = schema.model_validate(deployment["user_config"])
        except ValidationError as error:
            raise UserError(validation_problems(error, where)) from None
        if isinstance(config, RoutingConfig) and config.challenger_mode != "off" and args.credit_challenger is None:
            raise UserError(f"{where}.challenger_mode: needs args.credit_challenger")
        if isinstance(config, RoutingConfig) and config.uplift_challenger_mode != "off" and not args.uplift_challenger:
            raise UserError(f"{where}.uplift_challenger_mode: needs args.uplift_challenger")


def pin_model_versions(args: AppArgs) -> AppArgs:
    """Replace each model alias with the version it points at now.

    Serve rebuilds an application only when its `args` change, so deploying the same file after
    a promotion would change nothing; pinned versions make the promotion visible to Serve.
    """
    from tala_ray.core.registry import Registry

    registry = Registry(args.registry_uri)
    pinned = {
        field: ref.model_copy(update={"ref": registry.resolve(ref.name, ref.ref)})
        for field in MODEL_ARGS
        if (ref := getattr(args, field)) is not None
    }
    return args.model_copy(update=pinned)


def load_serve_config(path: str | Path, overrides: dict[str, Any] | None = None, pin_versions: bool = False) -> Any:
    """The file as Serve's own `ServeDeploySchema`, with our apps' `args` checked against `AppArgs`.

    `overrides` are merged into every one of our applications' `args` (e.g. a registry URI);
    `pin_versions` resolves model aliases in the registry (see `pin_model_versions`).
    """
    from ray.serve.schema import ServeDeploySchema

    raw = read_yaml_mapping(path, "serve config")
    for index, application in enumerate(raw.get("applications", [])):
        if application.get("import_path") != BUILDER_IMPORT_PATH:
            continue
        application["args"] = {**(application.get("args") or {}), **(overrides or {})}
        try:
            args = AppArgs.model_validate(application["args"])
        except ValidationError as error:
            raise UserError(validation_problems(error, f"applications[{index}].args")) from None
        check_user_configs(application, args, index)
        if pin_versions:
            pinned = pin_model_versions(args)
            application["args"] |= {f: getattr(pinned, f).model_dump() for f in MODEL_ARGS if getattr(pinned, f)}
    try:
        return ServeDeploySchema.model_validate(raw)
    except ValidationError as error:
        raise UserError(validation_problems(error, str(path))) from None


def deploy(config: Any, timeout_s: float = 300.0, settle_s: float = 2.0) -> None:
    """Start Serve with the file's HTTP options and deploy its applications; wait until RUNNING.

    Serve updates an application's status on its next control loop, so a status of RUNNING is
    trusted only after it left RUNNING or `settle_s` passed (an in-place update may never leave it).
    """
    from ray import serve
    from ray.serve._private.api import serve_start

    for application in config.applications:  # replicas verify model signatures with the keys given here
        env_vars = {**key_environment(), **application.runtime_env.get("env_vars", {})}
        if env_vars:
            application.runtime_env = {**application.runtime_env, "env_vars": env_vars}
    client = serve_start(http_options=config.http_options.model_dump(), proxy_location=config.proxy_location)
    client.deploy_apps(config, _blocking=False)
    names = [application.name for application in config.applications]
    started = time.monotonic()
    deadline = started + timeout_s
    left_running = False
    while time.monotonic() < deadline:
        statuses = {name: serve.status().applications.get(name) for name in names}
        states = {name: (s.status if s else "NOT_STARTED") for name, s in statuses.items()}
        failed = {name: statuses[name].message for name, state in states.items() if state == "DEPLOY_FAILED"}
        if failed:
            raise UserError("; ".join(f"application {n}: deploy failed: {m}" for n, m in failed.items()))
        all_running = all(state == "RUNNING" for state in states.values())
        left_running = left_running or not all_running
        if all_running and (left_running or time.monotonic() - started > settle_s):
            return
        time.sleep(0.2)
    raise UserError(f"applications {names}: not RUNNING after {timeout_s:.0f}s (see `serve status`)")
