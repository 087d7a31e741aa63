"""Room templates: the vetted computations a room may run, their floors and their risk.

A template fixes a room's allowed queries (computation id, version and code digest
from the registry), the minimum k it recommends, and whether releases must be
differentially private. A room is **risky** when it releases exact values, may
reveal record content, trains a model, or sets k below the template's floor;
a risky room needs two distinct approvers of every data party per run.

:func:`draft_room` turns a host's :class:`RoomSettings` into the room's policy
rules (the ``Policy`` every run names as its room policy, so the coordinator,
the owners' clients and the enclave all enforce them) and the
:class:`~sealroom.statements.RoomSnapshot` the members consent to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sealroom.computations.registry import Registry
from sealroom.errors import InvalidInput, NotFound
from sealroom.statements import ComputationRef
from sealroom.statements.fields import canonical_decimal
from sealroom.statements.rooms import MAX_ROOM_PARTIES, SNAPSHOT_FORMAT, RoomSnapshot

__all__ = [
    "TEMPLATES",
    "RoomSettings",
    "RoomTemplate",
    "draft_room",
    "risk_reasons",
    "template",
]

MIN_K = 2


@dataclass(frozen=True, slots=True)
class RoomTemplate:
    """One kind of room: its computations, the k it recommends and a plain description."""

    id: str
    title: str
    summary: str
    computations: tuple[str, ...]
    k_floor: int
    # Whether the template itself is risky whatever the settings (model training).
    always_risky: str | None = None
    # The no-trust protocols that compute what the template's computations do, for rooms
    # whose runs must not depend on an enclave (sealroom.protocols.queries).
    protocols: tuple[str, ...] = ()


TEMPLATES: tuple[RoomTemplate, ...] = (
    RoomTemplate(
        id="psi-overlap",
        title="PSI overlap and cohort sizing",
        summary="How many identifiers two parties share (overlap, union, Jaccard, shares).",
        computations=("intersection-overlap",),
        k_floor=10,
        protocols=("psi",),
    ),
    RoomTemplate(
        id="intersection-sum",
        title="Sum on the intersection",
        summary="Sum and mean of one party's bounded value over the identifiers both hold.",
        computations=("intersection-sum",),
        k_floor=10,
        protocols=("pjc",),
    ),
    RoomTemplate(
        id="research-stats",
        title="Aggregate and research statistics",
        summary="Per-group counts, sums, means, quantiles and intervals over stacked rows.",
        computations=("aggregate-stats",),
        k_floor=10,
    ),
    RoomTemplate(
        id="binary-lift",
        title="Binary lift",
        summary="Conversion rates of test and control arms joined on id, with the lift.",
        computations=("lift",),
        k_floor=20,
    ),
    RoomTemplate(
        id="glm-training",
        title="GLM training",
        summary="A logistic, linear or Poisson regression trained on several parties' rows.",
        computations=("train-model",),
        k_floor=50,
        always_risky="the room trains a model, whose parameters can memorise records",
        protocols=("he", "secagg"),
    ),
)


def template(template_id: str) -> RoomTemplate:
    """The template named ``template_id``, or :class:`NotFound` listing the known ones."""
    for t in TEMPLATES:
        if t.id == template_id:
            return t
    raise NotFound(f"no room template {template_id!r}; known: {', '.join(t.id for t in TEMPLATES)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomSettings:
    """What a host chooses when it creates a room from a template."""

    name: str
    purpose: str
    template: str
    k: int
    dp: Literal["required", "exact"] = "required"
    # Per run and in total, per member dataset (composed with each owner's own budget).
    epsilon_per_run: str | None = "1"
    epsilon_total: str | None = "4"
    retention_seconds: int = 30 * 86400
    expires_at: int
    region: str | None = None
    max_parties: int = 5
    approval: Literal["manual", "policy"] = "policy"
    # Also allow the template's no-trust protocols (exact releases: needs dp="exact").
    protocols: bool = False


def risk_reasons(t: RoomTemplate, registry: Registry, *, k: int, dp: str) -> tuple[str, ...]:
    """Why a room from ``t`` with this k and DP mode is risky (empty: it is not)."""
    reasons: list[str] = []
    if dp == "exact":
        reasons.append("the room allows exact (non-DP) releases")
    classes = {registry.get(c).privacy_class for c in t.computations}
    if "content" in classes:
        reasons.append("a query may reveal record content")
    if t.always_risky is not None:
        reasons.append(t.always_risky)
    if k < t.k_floor:
        reasons.append(f"k {k} is below the template's floor {t.k_floor}")
    return tuple(reasons)


def _decimal(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    try:
        d = Decimal(value)
    except ArithmeticError:
        raise InvalidInput(f"{what} must be a decimal number, not {value!r}") from None
    if not d.is_finite() or d <= 0:
        raise InvalidInput(f"{what} must be a positive number")
    return canonical_decimal(d)


def draft_room(
    settings: RoomSettings,
    *,
    host: str,
    registry: Registry,
    now: int,
    protocol_ref: Callable[[str], ComputationRef] | None = None,
) -> tuple[dict[str, Any], Callable[[str], RoomSnapshot]]:
    """The room policy's rules and a function of its digest giving the snapshot.

    ``protocol_ref`` (:func:`sealroom.protocols.queries.protocol_ref`, a layer above this
    one) names the template's protocols when ``settings.protocols`` allows them.

    Returns ``(rules, make_snapshot)``: sign a ``Policy`` with ``rules``, then
    ``make_snapshot(policy_digest)`` is the :class:`RoomSnapshot` to put in the room.
    Bad settings raise :class:`InvalidInput` naming the setting.
    """
    t = template(settings.template)
    if not MIN_K <= settings.k <= 1_000_000:
        raise InvalidInput(f"k must be between {MIN_K} and 1000000")
    if not 2 <= settings.max_parties <= MAX_ROOM_PARTIES:
        raise InvalidInput(f"max_parties must be between 2 and {MAX_ROOM_PARTIES}")
    if settings.expires_at <= now:
        raise InvalidInput("the room's expiry must be in the future")
    per_run = _decimal(settings.epsilon_per_run, "epsilon_per_run")
    total = _decimal(settings.epsilon_total, "epsilon_total")
    if settings.dp == "required":
        if per_run is None or total is None:
            raise InvalidInput("a room that requires DP sets epsilon_per_run and epsilon_total")
        if Decimal(per_run) > Decimal(total):
            raise InvalidInput("epsilon_per_run cannot exceed epsilon_total")
    computations = [registry.get(c) for c in t.computations]
    protocol_refs: tuple[ComputationRef, ...] = ()
    if settings.protocols:
        if not t.protocols:
            raise InvalidInput(f"template {t.id} has no no-trust protocol; it runs in an enclave")
        if settings.dp != "exact":
            raise InvalidInput(
                "a room that runs no-trust protocols sets dp to exact: their releases are exact "
                "and no enclave holds a DP budget for them"
            )
        if protocol_ref is None:
            raise InvalidInput("this caller cannot name protocols (no protocol_ref given)")
        protocol_refs = tuple(protocol_ref(p) for p in t.protocols)
    risks = risk_reasons(t, registry, k=settings.k, dp=settings.dp)
    mode = "required" if settings.dp == "required" else "optional"
    rules: dict[str, Any] = {
        "allow": [{"id": c.id, "min_version": c.version, "dp": mode} for c in computations],
        "requesters": [host],
        "k": settings.k,
        "expires_at": settings.expires_at,
        "retention_seconds": settings.retention_seconds,
        "consent_required": True,
    }
    if settings.approval == "policy" and not risks:
        rules["auto_approve"] = [{"id": c.id, "min_version": c.version} for c in computations]
    if total is not None:
        rules["dp"] = {"epsilon_per_requester": total, "epsilon_total": total}
    if settings.region is not None:
        rules["region"] = settings.region
    refs = (*(c.ref() for c in computations), *protocol_refs)

    def make_snapshot(policy_digest: str) -> RoomSnapshot:
        try:
            return RoomSnapshot.model_validate(
                {
                    "format": SNAPSHOT_FORMAT,
                    "name": settings.name,
                    "purpose": settings.purpose,
                    "host": host,
                    "template": {
                        "id": t.id,
                        "title": t.title,
                        "k_floor": t.k_floor,
                        "risky": bool(risks),
                        "risk_reasons": risks,
                    },
                    "allowed_queries": refs,
                    "recipients": "host-and-input-owners",
                    "k": settings.k,
                    "dp": {
                        "mode": settings.dp,
                        "epsilon_per_run": per_run,
                        "epsilon_total": total,
                        "delta_total": "0",
                    },
                    "retention_seconds": settings.retention_seconds,
                    "expires_at": settings.expires_at,
                    "region": settings.region,
                    "max_parties": settings.max_parties,
                    "approval": "manual" if risks else settings.approval,
                    "approvers_required": 2 if risks else 1,
                    "policy": policy_digest,
                    "created_at": now,
                }
            )
        except ValueError as exc:
            raise InvalidInput(f"room settings: {exc}") from None

    return rules, make_snapshot
