"""Request and response bodies of the decision API (pydantic; they make the OpenAPI spec), the
error answers each route documents, and the spec itself (`document_api`)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from tala_ray.features.online import ApplicationByIdRequest, ApplicationRequest
from tala_ray.policy.decision import ReasonCode
from tala_ray.serving.auth import OPEN_PATHS

DecisionRequest = ApplicationRequest


class BatchDecisionRequest(BaseModel):
    """Several applications decided in one call (at most the configured `max_batch_applications`)."""

    model_config = ConfigDict(extra="forbid")

    applications: list[ApplicationRequest] = Field(min_length=1)


class BatchByIdRequest(BaseModel):
    """Several applications decided by applicant id in one call (the online store holds their data)."""

    model_config = ConfigDict(extra="forbid")

    applications: list[ApplicationByIdRequest] = Field(min_length=1)


def _absent(value: object) -> bool:
    """A field only some services have (several arms, an uplift challenger) is left out when it is not there."""
    return value is None


class ModelVersions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credit: str
    credit_role: Literal["champion", "challenger"]
    uplift: str
    uplift_role: Literal["champion", "challenger"] | None = Field(
        None, exclude_if=_absent, description="The uplift model's role: present while an uplift challenger is a canary."
    )


class DecisionResponse(BaseModel):
    """The decision for one application."""

    model_config = ConfigDict(extra="forbid")

    request_id: str
    decision: Literal["approve", "decline"]
    limit: float = Field(description="Amount offered (0 on a decline), local currency.")
    intervention: str | None = Field(description="The intervention attached to the loan, if any.")
    default_probability: float = Field(description="Probability of default without the intervention.")
    uplift: float = Field(
        description="Reduction in default probability from the intervention (with several arms: the largest)."
    )
    expected_profit: float = Field(description="Expected profit of the best option, local currency.")
    reason_codes: list[ReasonCode] = Field(description="Up to four principal reasons for a decline.")
    model_versions: ModelVersions
    uplift_by_arm: dict[str, float] | None = Field(
        None, exclude_if=_absent, description="Several arms: each arm's reduction in default probability."
    )
    expected_profit_by_option: dict[str, float | None] | None = Field(
        None,
        exclude_if=_absent,
        description="Several arms: the expected profit of every option (none and each arm, net of its cost; "
        "null where the limit ladder lends nothing), local currency.",
    )
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
    uplift_challenger: dict[str, Any] | None = None
    challenger_mode: str
    canary_weight: float
    uplift_challenger_mode: str = "off"
    uplift_canary_weight: float = 0.0
    policy: dict[str, Any]
    replica: str = Field(description="The ingress replica that answered.")


class Problem(BaseModel):
    """One reason a request was refused."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(None, description="pydantic's error type, when pydantic found the problem.")
    loc: list[str | int] = Field(description='Where: "body" or "header", then keys and list positions.')
    msg: str = Field(description="What is wrong: the rule or the bound the value breaks.")
    input: Any = Field(None, description="The offending value: at most 100 characters of its JSON text.")
    ctx: dict[str, Any] | None = Field(None, description="The rule's parameters (pydantic's).")


class ErrorResponse(BaseModel):
    """A refused request: a message, or the problems found (at most 20, then one counting the rest)."""

    model_config = ConfigDict(extra="forbid")

    detail: str | list[Problem]


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "A declared Content-Length that is not a number.",
    401: "No valid API key: send `Authorization: Bearer <key>`.",
    404: "An `applicant_id` the online store has no record of (the detail names it).",
    409: "The Idempotency-Key was used before with a different request body.",
    413: "The body is larger than `max_body_bytes` (counted as it arrives, chunked or not), or the batch holds "
    "more than `max_batch_applications` applications.",
    415: "A Content-Type the route does not read.",
    422: "The request is invalid: each problem's `loc` names the field, `msg` the rule or bound it breaks.",
    503: "No replica can take the request now (Serve's backpressure, or none running; answered by Serve's "
    "proxy, as plain text), or the online store or event stream is unavailable (JSON, with `Retry-After`): "
    "retry, after the `Retry-After` seconds when given.",
}
_ALSO_PLAIN_TEXT = frozenset({503})  # Serve's proxy answers it as text, the app as JSON


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` documenting the error statuses `codes` of a route (an `ErrorResponse`,
    and plain text too where Serve's proxy may answer)."""
    plain = {"content": {"text/plain": {"schema": {"type": "string"}}}}
    return {
        code: {
            "description": ERROR_DESCRIPTIONS[code],
            "model": ErrorResponse,
            **(plain if code in _ALSO_PLAIN_TEXT else {}),
        }
        for code in codes
    }


BEARER_SCHEME = "bearerAuth"


def document_api(app: FastAPI, bearer_auth: bool) -> None:
    """Make the app's OpenAPI spec carry `BatchDecisionRequest`, `BatchByIdRequest` and, among their
    definitions, `ApplicationRequest` and `ApplicationByIdRequest` (the routes read their bodies
    themselves), and, with `bearer_auth`, the bearer API key scheme required by every route but the
    open ones (`auth.OPEN_PATHS`)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema = BatchDecisionRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = spec.setdefault("components", {})
            components.setdefault("schemas", {}).update(schema.pop("$defs", {}))
            components["schemas"]["BatchDecisionRequest"] = schema
            by_id = BatchByIdRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components["schemas"].update(by_id.pop("$defs", {}))
            components["schemas"]["BatchByIdRequest"] = by_id
            if bearer_auth:
                scheme = {"type": "http", "scheme": "bearer", "description": "An API key of the service."}
                components["securitySchemes"] = {BEARER_SCHEME: scheme}
                for path, operations in spec["paths"].items():
                    if path not in OPEN_PATHS:
                        for operation in operations.values():
                            operation["security"] = [{BEARER_SCHEME: []}]
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
