"""Typed arguments of the decision application (the `args:` block of a Serve config file)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tala_ray.core.settings import get_settings
from tala_ray.policy.decision import PolicyParams
from tala_ray.serving.online_store import OnlineStoreConfig


def default_log_uri() -> str:
    """Where the decision service writes its prediction log by default: $TALA_DATA_ROOT/prediction_log."""
    return f"{get_settings().data_root}/prediction_log"


class ModelRef(BaseModel):
    """A model in the registry: its name and an alias (`champion`, `challenger`) or a version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    ref: str = Field("champion", min_length=1)


class BatchingConfig(BaseModel):
    """How an ingress replica groups concurrent single decisions into one pass of the graph
    (`@serve.batch`): at most `max_batch_size`, waiting at most `batch_wait_timeout_s` after the
    first for more (0: take what is queued, never wait).

    The 5 ms default: a group's fixed cost (~2 ms of CPU) is then shared by more requests at
    moderate load, which cut the p99 at ~800 requests/s from 51-58 to 39-42 ms on 2 cores; only
    when others are in flight (`wait_from_in_flight`): a lone request is decided at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(32, ge=1, le=512)
    batch_wait_timeout_s: float = Field(0.005, ge=0.0, le=1.0)
    wait_from_in_flight: int = Field(
        3,
        ge=1,
        description="Wait for companions only while at least this many single decisions are in the replica "
        "(the new one included); fewer are decided with what is queued at once, so a lone request never waits.",
    )

    def wait_s(self, in_flight: int) -> float:
        """How long a group started with `in_flight` single decisions in the replica waits for more."""
        return self.batch_wait_timeout_s if in_flight >= self.wait_from_in_flight else 0.0


ChallengerMode = Literal["off", "canary", "shadow"]


class RoutingConfig(BaseModel):
    """The ingress `user_config`: who decides, and how large a batch may be (changed live)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    challenger_mode: Literal["off", "canary", "shadow"] = "off"
    canary_weight: float = Field(0.0, ge=0.0, le=1.0)
    uplift_challenger_mode: ChallengerMode = "off"
    uplift_canary_weight: float = Field(0.0, ge=0.0, le=1.0)
    max_batch_applications: int = Field(100, ge=1)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)


class AppArgs(BaseModel):
    """Everything the application builder needs; validated before anything is deployed."""

    model_config = ConfigDict(extra="forbid")

    registry_uri: str = Field(min_length=1, description="Model registry root (path or s3:// / gs:// URI).")
    graph: Literal["composed", "fused"] = Field(
        "composed",
        description="composed: each step (features, credit, uplift, policy) its own deployment, scaled on its own; "
        "fused: every step inside each ingress replica, no handle calls (fastest on small nodes).",
    )
    credit_model: ModelRef = Field(description="The credit model that decides (the champion).")
    uplift_model: ModelRef = Field(description="The uplift model for the intervention.")
    credit_challenger: ModelRef | None = Field(None, description="A second credit model for canary or shadow.")
    challenger_mode: Literal["off", "canary", "shadow"] = Field(
        "off", description="canary: the challenger decides a `canary_weight` share; shadow: it scores, never decides."
    )
    canary_weight: float = Field(0.0, ge=0.0, le=1.0, description="Share of applications the challenger decides.")
    uplift_challenger: ModelRef | None = Field(None, description="A second uplift model for canary or shadow.")
    uplift_challenger_mode: ChallengerMode = Field(
        "off",
        description="canary: the uplift challenger's effects decide an `uplift_canary_weight` share; shadow: its "
        "effects are computed and logged beside the champion's, and the decisions they would change counted.",
    )
    uplift_canary_weight: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of applications decided with the uplift challenger's effects."
    )
    expected_feature_set_version: str | None = Field(
        None, description="Models must match this feature-set version; default: the code's current version."
    )
    policy: PolicyParams = Field(default_factory=PolicyParams)
    max_batch_applications: int = Field(100, ge=1, le=10_000, description="Largest batch request accepted (else 413).")
    max_body_bytes: int = Field(5_000_000, ge=1_000, description="Largest request body accepted (else 413).")
    decision_batching: BatchingConfig = Field(
        default_factory=BatchingConfig, description="Concurrent single decisions of a replica decided together."
    )
    online_store: OnlineStoreConfig = Field(
        default_factory=OnlineStoreConfig, description="Where decisions by applicant id read the applicant's data."
    )
    prediction_log_uri: str | None = Field(
        None, description="Prediction log root; default $TALA_DATA_ROOT/prediction_log."
    )
    log_flush_interval_s: float = Field(2.0, gt=0.0, le=300.0)
    log_max_buffer_rows: int = Field(10_000, ge=1)  # a flush has a fixed cost (~0.6 ms): batches share it
    api_key_env: str = Field("TALA_API_KEY", min_length=1, description="Environment variable holding the API key.")
    api_key_file: str | None = Field(None, description="File holding API keys, one a line (wins over api_key_env).")
    idempotency_cache_size: int = Field(
        10_000, ge=1, description="Answered idempotency keys remembered (one store shared by every ingress replica)."
    )

    @model_validator(mode="after")
    def _challenger_present(self) -> AppArgs:
        if self.challenger_mode != "off" and self.credit_challenger is None:
            raise ValueError(f"credit_challenger: required when challenger_mode is {self.challenger_mode!r}")
        if self.uplift_challenger_mode != "off" and self.uplift_challenger is None:
            raise ValueError(
                f"uplift_challenger: required when uplift_challenger_mode is {self.uplift_challenger_mode!r}"
            )
        return self
