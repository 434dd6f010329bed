"""Request and response bodies of the decision API (pydantic; they make the OpenAPI spec)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tala_ray.features.online import ApplicationRequest
from tala_ray.policy.decision import ReasonCode

DecisionRequest = ApplicationRequest


class BatchDecisionRequest(BaseModel):
    """Several applications decided in one call (at most the configured `max_batch_applications`)."""

    model_config = ConfigDict(extra="forbid")

    applications: list[ApplicationRequest] = Field(min_length=1)


class ModelVersions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credit: str
    credit_role: Literal["champion", "challenger"]
    uplift: str


class DecisionResponse(BaseModel):
    """The decision for one application."""

    model_config = ConfigDict(extra="forbid")

    request_id: str
    decision: Literal["approve", "decline"]
    limit: float = Field(description="Amount offered (0 on a decline), local currency.")
    intervention: str | None = Field(description="The intervention attached to the loan, if any.")
    default_probability: float = Field(description="Probability of default without the intervention.")
    uplift: float = Field(description="Reduction in default probability from the intervention.")
    expected_profit: float = Field(description="Expected profit of the best option, local currency.")
    reason_codes: list[ReasonCode] = Field(description="Up to four principal reasons for a decline.")
    model_versions: ModelVersions
    replayed: bool = Field(False, description="True when returned from an earlier call with the same Idempotency-Key.")


class BatchDecisionResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_id: str
    decisions: list[DecisionResponse]
    replayed: bool = False


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ModelsResponse(BaseModel):
    """The models each deployment serves, the last reload error if any, and the answering replicas."""

    credit_champion: dict[str, Any]
    credit_challenger: dict[str, Any] | None
    uplift: dict[str, Any]
    challenger_mode: str
    canary_weight: float
    policy: dict[str, Any]
    replica: str = Field(description="The ingress replica that answered.")
