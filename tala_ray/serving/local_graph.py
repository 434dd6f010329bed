"""The fused model graph: every step's deployment class instantiated inside the ingress replica.

Each step is called exactly like a deployment handle (`step.method.remote(...)`, awaited), so the
ingress code is the same for both layouts; a fused graph just makes no Ray calls. On a small node
(2 cores) a handle call costs several ms of CPU, more than the whole graph's compute, so the
fused layout is the fast one; the composed layout scales each step on its own across nodes.
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import BaseModel, ConfigDict


class LocalGraphConfig(BaseModel):
    """The `user_config` each step would get as a deployment (the builder derives them from args)."""

    model_config = ConfigDict(extra="forbid")

    credit_champion: dict[str, Any]
    credit_challenger: dict[str, Any] | None
    uplift: dict[str, Any]
    policy: dict[str, Any]


async def _resolved(value: Any) -> Any:
    return value


class _LocalMethod:
    def __init__(self, method: Any) -> None:
        self._method = method

    def remote(self, *args: Any) -> Any:
        """An awaitable of the method's result, as a handle call returns."""
        result = self._method(*args)
        return result if inspect.isawaitable(result) else _resolved(result)


class LocalStep:
    """A deployment's class instantiated here and configured with its `user_config` (if it takes one)."""

    def __init__(self, deployment: Any, user_config: dict[str, Any] | None = None) -> None:
        self._instance = deployment.func_or_class()
        if user_config is not None:
            self._instance.reconfigure(user_config)

    def __getattr__(self, name: str) -> _LocalMethod:
        return _LocalMethod(getattr(self._instance, name))


def local_steps(config: LocalGraphConfig) -> tuple[LocalStep, LocalStep, LocalStep | None, LocalStep, LocalStep]:
    """(features, credit champion, credit challenger or None, uplift, policy) in this process."""
    from tala_ray.serving.deployments import CreditModel, DecisionPolicy, FeatureTransform, UpliftModel

    challenger = None if config.credit_challenger is None else LocalStep(CreditModel, config.credit_challenger)
    return (
        LocalStep(FeatureTransform),
        LocalStep(CreditModel, config.credit_champion),
        challenger,
        LocalStep(UpliftModel, config.uplift),
        LocalStep(DecisionPolicy, config.policy),
    )
