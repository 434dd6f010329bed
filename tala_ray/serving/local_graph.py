"""Steps run in this process: a deployment's class instantiated here and called like its handle.

Each step is called exactly like a deployment handle (`step.method.remote(...)`, awaited), so the
code that calls the steps (`steps.decide`) is the same for both layouts and the in-process
baseline; a local step just makes no Ray calls. On a small node (2 cores) a handle call costs
several ms of CPU, more than the whole graph's compute, so the fused layout (every step local to
the ingress replica) is the fast one; the composed layout scales each step on its own across nodes.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any


class _LocalMethod:
    def __init__(self, method: Any) -> None:
        self._method = method

    def remote(self, *args: Any) -> Any:
        """An awaitable of the method's result, as a handle call returns: the method's own (a
        coroutine method), or a finished future (awaiting it does not return to the event loop)."""
        result = self._method(*args)
        if inspect.isawaitable(result):
            return result
        done = asyncio.get_running_loop().create_future()
        done.set_result(result)
        return done


class LocalStep:
    """A deployment's class instantiated here and configured with its `user_config` (if it takes one)."""

    def __init__(self, deployment: Any, user_config: dict[str, Any] | None = None) -> None:
        self._instance = deployment.func_or_class()
        if user_config is not None:
            self._instance.reconfigure(user_config)

    def __getattr__(self, name: str) -> _LocalMethod:
        return _LocalMethod(getattr(self._instance, name))
