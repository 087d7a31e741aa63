"""Dataset policy rules and the decision they give on a request.

The rules live inside a signed :class:`~sealroom.statements.Policy`; this module
gives them meaning. Three places evaluate the same rules with the same code:
the coordinator (a pre-check that routes or rejects early), the owner's client
(automatic approval, signed by the owner's key and attributed to the policy),
and the enclave (which trusts neither of the others and checks again).

Fail closed: a policy that allows nothing denies everything, and a computation
of privacy class ``content`` is never approved automatically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sealroom.computations.base import DEFAULT_K, Computation
from sealroom.errors import InvalidInput
from sealroom.statements.canonical import canonical_json
from sealroom.statements.fields import Identifier, PartyIdStr

__all__ = ["ComputationRule", "Decision", "PolicyRules", "decide"]

_VERSION = r"^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}$"


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ComputationRule(_Rules):
    """A computation id and the half-open version range ``[min_version, below_version)``."""

    id: Identifier
    min_version: Annotated[str, Field(pattern=_VERSION)] = "0.0.0"
    below_version: Annotated[str, Field(pattern=_VERSION)] | None = None

    @model_validator(mode="after")
    def _range(self) -> ComputationRule:
        if self.below_version is not None and _version_key(self.below_version) <= _version_key(
            self.min_version
        ):
            raise ValueError("below_version must be greater than min_version")
        return self

    def matches(self, computation: Computation) -> bool:
        v = _version_key(computation.version)
        return (
            computation.id == self.id
            and v >= _version_key(self.min_version)
            and (self.below_version is None or v < _version_key(self.below_version))
        )


class PolicyRules(_Rules):
    """What an owner allows on one dataset.

    ``allow`` lists the computations anyone may request (an empty list allows
    none); ``auto_approve`` lists those the owner's client approves without
    asking; ``requesters`` is ``"any"`` or an allowlist of party ids; ``k`` is
    the minimum number of records a released term or group must occur in.
    """

    allow: Annotated[tuple[ComputationRule, ...], Field(max_length=64)] = ()
    auto_approve: Annotated[tuple[ComputationRule, ...], Field(max_length=64)] = ()
    requesters: Literal["any"] | Annotated[tuple[PartyIdStr, ...], Field(max_length=1000)] = "any"
    k: Annotated[int, Field(ge=1, le=1_000_000)] = DEFAULT_K

    @classmethod
    def parse(cls, rules: Mapping[str, object]) -> PolicyRules:
        """Validate the ``rules`` object of a Policy statement, or raise :class:`InvalidInput`."""
        # Validated as JSON: rules come from a JSON payload, where lists are arrays and
        # strict mode accepts them for tuples (in Python mode it would refuse a list).
        try:
            data = canonical_json(dict(rules))
        except InvalidInput as exc:
            raise InvalidInput(f"policy rules: {exc.detail}") from None
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "rules"
            raise InvalidInput(f"policy rules {where}: {first['msg']}") from None


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of evaluating rules on one request; ``reasons`` say why, in order."""

    allowed: bool
    automatic: bool
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def decide(rules: PolicyRules | None, *, computation: Computation, requester: str) -> Decision:
    """Evaluate ``rules`` (None: the dataset has no policy) for one request.

    Without a policy a request may be made and waits for a person. With one,
    it must be allowed by ``allow`` and ``requesters``; it is automatic only if
    ``auto_approve`` also matches and the computation does not reveal content.
    """
    if rules is None:
        return Decision(
            allowed=True,
            automatic=False,
            reasons=("the dataset has no policy; the owner decides by hand",),
        )
    label = f"{computation.id} {computation.version}"
    if rules.requesters != "any" and requester not in rules.requesters:
        return Decision(False, False, (f"requester {requester} is not on the policy's allowlist",))
    if not any(r.matches(computation) for r in rules.allow):
        return Decision(False, False, (f"the policy does not allow {label}",))
    reasons = [f"the policy allows {label}"]
    if not any(r.matches(computation) for r in rules.auto_approve):
        reasons.append("not listed for automatic approval; the owner decides by hand")
        return Decision(True, False, tuple(reasons))
    if computation.privacy_class == "content":
        reasons.append("reveals record content, so never approved automatically")
        return Decision(True, False, tuple(reasons))
    reasons.append(f"the policy approves {label} automatically (k={rules.k})")
    return Decision(True, True, tuple(reasons))
