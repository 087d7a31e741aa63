"""The service's own responses: health, the computation catalogue, and the error body."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sealroom.wire.base import WireModel
from sealroom.wire.fields import DigestStr

__all__ = [
    "ComputationInfo",
    "ComputationList",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "Readiness",
    "ReadinessCheck",
]


class Health(WireModel):
    status: Literal["ok"]
    version: str


class ReadinessCheck(WireModel):
    """One named readiness check (``database``, ``schema``, ``log_key``) and why it failed."""

    name: str
    ok: bool
    detail: str


class Readiness(WireModel):
    """``GET /readyz``: ready only when every check passes (503 otherwise)."""

    status: Literal["ready", "not-ready"]
    version: str
    checks: tuple[ReadinessCheck, ...]


class ComputationInfo(WireModel):
    """``Computation.describe()``: what an approver is shown."""

    id: str
    version: str
    summary: str
    privacy_class: Literal["aggregate", "model", "content"]
    release: Literal["all-parties", "requester"]
    inputs: tuple[str, ...]
    variadic: bool
    code_digest: DigestStr
    isolating: tuple[str, ...] = Field(
        description="Parameters a policy must pin for an exact (non-DP) release."
    )
    selectors: bool = Field(
        description="Whether other inputs select this input's rows (partners must be pinned)."
    )
    parameters_schema: dict[str, Any]
    output_schema: dict[str, Any]


class ComputationList(WireModel):
    computations: tuple[ComputationInfo, ...]


class ErrorDetail(WireModel):
    code: str = Field(description="Stable error code from the catalog (api/errors.py).")
    message: str = Field(description="Safe public message for the code.")
    detail: str = Field(description="What to fix.")


class ErrorBody(WireModel):
    """Every 4xx and 5xx answer."""

    error: ErrorDetail
