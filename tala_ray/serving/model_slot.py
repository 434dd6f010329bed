"""Holding one registry model in a replica and swapping it safely when `user_config` changes."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tala_ray.models.predictors import load_predictor
from tala_ray.serving.metrics import serving_metrics

log = logging.getLogger("ray.serve")


class ModelConfig(BaseModel):
    """The `user_config` of a model deployment: which exact version to serve."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registry_uri: str
    name: str
    version: str = Field(description="Exact registry version (the builder resolves aliases to it).")
    role: str = Field("champion", description="Label used in responses, metrics and the log.")
    expected_feature_set_version: str | None = None

    def same_model(self, other: ModelConfig | None) -> bool:
        """True when `other` names the same artifact under the same expectations."""
        keys = ("registry_uri", "name", "version", "expected_feature_set_version")
        return other is not None and all(getattr(self, k) == getattr(other, k) for k in keys)


class ModelSlot:
    """The predictor of one kind ('credit' or 'uplift') a replica serves. A failed reload keeps the
    old predictor and records why."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.predictor: Any = None
        self.config: ModelConfig | None = None
        self.load_error: str | None = None

    def apply(self, config: ModelConfig) -> None:
        """Load `config`'s model unless it is already loaded; raise only when nothing is serving yet."""
        if config.same_model(self.config):
            self.config = config
            return
        try:
            predictor = load_predictor(
                config.registry_uri,
                config.name,
                ref=config.version,
                expected_feature_set_version=config.expected_feature_set_version,
                kind=self.kind,
            )
        except Exception as error:
            if self.predictor is None:
                raise
            self.load_error = f"{config.name}@{config.version}: {type(error).__name__}: {error}"
            log.error("%s model reload failed, still serving %s: %s", self.kind, self.served_version, self.load_error)
            serving_metrics().model_load_failures.inc(tags={"model": self.kind})
            return
        log.info("%s model now serving %s@%s", self.kind, config.name, predictor.version)
        self.predictor, self.config, self.load_error = predictor, config, None

    @property
    def served_version(self) -> str | None:
        return None if self.predictor is None else str(self.predictor.version)

    def info(self) -> dict[str, Any]:
        """What `GET /v1/models` shows for this model."""
        return {
            "kind": self.kind,
            "role": self.config.role if self.config else None,
            "name": self.config.name if self.config else None,
            "version": self.served_version,
            "feature_set_version": getattr(self.predictor, "feature_set_version", None),
            "load_error": self.load_error,
        }
