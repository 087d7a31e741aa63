"""Composing policies: a dataset's own rules and a room's rules, strictest wins.

A room policy (a ``Policy`` statement whose rules apply to every input of a
request) can only ever make things stricter: allows and auto-approvals are
intersected (per computation id, version ranges intersected; release modes
intersected, an explicit mode winning over a default one; only parameters both
sides pin to the same value stay pinned, and only partners both pin), requester
allowlists intersected, ``k`` is the maximum, budgets and caps the minimum,
expiry the earliest, ``never_output`` / ``join_only`` the union, SQL rules the
intersection of what each admits. Because composition is monotone, the enclave
may accept any validly signed room policy handed to it: it cannot weaken an
owner's policy, only deny more.

``None`` for ``dp``, ``bits`` or ``sql`` means "none allowed", so it wins; ``None`` for
``max_queries``, ``max_output_rows``, ``expires_at`` and ``retention_seconds``
means "no limit", so
the other side's limit wins. Composing nothing yields rules that allow nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from sealroom.errors import PolicyDenied
from sealroom.policy.privacy import ComputationInfo, DpMode, PrivacyCost, RequestShape
from sealroom.policy.rules import (
    BitBudget,
    ComputationRule,
    Decision,
    DpBudget,
    Pinned,
    PolicyRules,
    QueryLimit,
    _version_key,
    decide,
)
from sealroom.policy.sql_rules import SqlAnalysisRules

__all__ = ["compose", "decide_in_room"]


def _intersect_rules(
    a: Sequence[ComputationRule], b: Sequence[ComputationRule]
) -> tuple[ComputationRule, ...]:
    out: list[ComputationRule] = []
    for x in a:
        for y in b:
            if x.id != y.id:
                continue
            lo = max(x.min_version, y.min_version, key=_version_key)
            highs = [v for v in (x.below_version, y.below_version) if v is not None]
            hi = min(highs, key=_version_key) if highs else None
            if hi is not None and _version_key(hi) <= _version_key(lo):
                continue
            possible, mode = _modes(x.dp, y.dp)
            if not possible:
                continue
            rule = ComputationRule(
                id=x.id,
                min_version=lo,
                below_version=hi,
                dp=mode,
                pinned=None if mode == "required" else _pins(x.pinned, y.pinned),
            )
            if rule not in out:
                out.append(rule)
    return tuple(out)


_RELEASES: dict[DpMode, frozenset[str]] = {
    "required": frozenset({"dp"}),
    "optional": frozenset({"dp", "exact"}),
    "off": frozenset({"exact"}),
}


def _modes(a: DpMode | None, b: DpMode | None) -> tuple[bool, DpMode | None]:
    """Whether any release mode is left, and the mode both allow. A default (None) defers
    to the other side; :func:`decide_in_room` still decides on each policy alone, so a
    default that would deny is never lost."""
    if a is None or b is None:
        return True, b if a is None else a
    both = _RELEASES[a] & _RELEASES[b]
    for mode, releases in _RELEASES.items():
        if releases == both:
            return True, mode
    return False, None


def _pins(a: Pinned | None, b: Pinned | None) -> Pinned | None:
    """Pins both sides hold: a parameter pinned by one side only, or to two values, is not
    pinned (so an exact request is refused for it); partners both sides name."""
    if a is None and b is None:
        return None
    pa, pb = a or Pinned(), b or Pinned()
    return Pinned(
        params={k: v for k, v in pa.params.items() if k in pb.params and pb.params[k] == v},
        partners=tuple(d for d in pa.partners if d in set(pb.partners)),
    )


def _min_opt(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _min_decimal(a: str, b: str) -> str:
    return a if Decimal(a) <= Decimal(b) else b


def _dp(a: DpBudget | None, b: DpBudget | None) -> DpBudget | None:
    if a is None or b is None:
        return None
    return DpBudget(
        epsilon_per_requester=_min_decimal(a.epsilon_per_requester, b.epsilon_per_requester),
        epsilon_total=_min_decimal(a.epsilon_total, b.epsilon_total),
        delta_per_requester=_min_decimal(a.delta_per_requester, b.delta_per_requester),
        delta_total=_min_decimal(a.delta_total, b.delta_total),
    )


def _bits(a: BitBudget | None, b: BitBudget | None) -> BitBudget | None:
    if a is None or b is None:
        return None
    return BitBudget(
        per_requester=_min_decimal(a.per_requester, b.per_requester),
        total=_min_decimal(a.total, b.total),
    )


def _queries(a: QueryLimit | None, b: QueryLimit | None) -> QueryLimit | None:
    """Both limits apply; one limit that is at least as strict on both counts replaces two."""
    if a is None:
        return b
    if b is None:
        return a
    # count per period: fewer queries over a longer period is stricter on both axes.
    return QueryLimit(
        count=min(a.count, b.count), period_seconds=max(a.period_seconds, b.period_seconds)
    )


def _union(a: Iterable[str], b: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(a) | set(b)))


def _inter(a: Iterable[str], b: Iterable[str]) -> tuple[str, ...]:
    keep = set(b)
    return tuple(x for x in a if x in keep)


def _sql(a: SqlAnalysisRules | None, b: SqlAnalysisRules | None) -> SqlAnalysisRules | None:
    if a is None or b is None:
        return None
    return SqlAnalysisRules(
        aggregations=_inter(a.aggregations, b.aggregations),  # type: ignore[arg-type]
        aggregate_columns=_inter(a.aggregate_columns, b.aggregate_columns),
        dimension_columns=_inter(a.dimension_columns, b.dimension_columns),
        filter_columns=_inter(a.filter_columns, b.filter_columns),
        join_columns=_inter(a.join_columns, b.join_columns),
        identity_columns=_union(a.identity_columns, b.identity_columns),
    )


def _pair(a: PolicyRules, b: PolicyRules) -> PolicyRules:
    if a.requesters == "any":
        requesters = b.requesters
    elif b.requesters == "any":
        requesters = a.requesters
    else:
        requesters = _inter(a.requesters, b.requesters)
    if a.entity_column is not None and b.entity_column not in (None, a.entity_column):
        raise PolicyDenied(
            f"the policies name different entity columns ({a.entity_column!r} and "
            f"{b.entity_column!r}); k cannot be counted for both"
        )
    if a.region is not None and b.region not in (None, a.region):
        raise PolicyDenied(
            f"rule region: the policies pin different regions ({a.region!r} and {b.region!r}); "
            "no enclave can satisfy both"
        )
    return PolicyRules(
        allow=_intersect_rules(a.allow, b.allow),
        auto_approve=_intersect_rules(a.auto_approve, b.auto_approve),
        requesters=requesters,
        k=max(a.k, b.k),
        entity_column=a.entity_column or b.entity_column,
        dp=_dp(a.dp, b.dp),
        bits=_bits(a.bits, b.bits),
        max_queries=_queries(a.max_queries, b.max_queries),
        join_only=_union(a.join_only, b.join_only),
        never_output=_union(a.never_output, b.never_output),
        max_output_rows=_min_opt(a.max_output_rows, b.max_output_rows),
        expires_at=_min_opt(a.expires_at, b.expires_at),
        sql=_sql(a.sql, b.sql),
        retention_seconds=_min_opt(a.retention_seconds, b.retention_seconds),
        region=a.region or b.region,
        consent_required=a.consent_required or b.consent_required,
    )


def compose(*rules: PolicyRules) -> PolicyRules:
    """The effective rules of all of ``rules`` together (strictest wins); none: deny all."""
    if not rules:
        return PolicyRules()
    out = rules[0]
    for r in rules[1:]:
        out = _pair(out, r)
    return out


def decide_in_room(
    own: PolicyRules | None,
    room: PolicyRules | None,
    *,
    computation: ComputationInfo,
    request: RequestShape,
    requester: str,
    now: int | None = None,
    cost: PrivacyCost | None = None,
) -> tuple[Decision, PolicyRules | None]:
    """Decide on a dataset's own rules composed with a room's; return it and the effective rules.

    The coordinator's pre-check, the owner's client and the enclave all decide
    through this function. Allowed only if the dataset's own policy, the room's
    policy on its own and their composition all allow; automatic only if the
    owner's policy and the composition approve automatically (the approval is
    attributed to the owner's policy, and the room may restrict automatic
    approvals). Without a room this is ``decide``.
    """

    def on(rules: PolicyRules | None) -> Decision:
        return decide(
            rules,
            computation=computation,
            request=request,
            requester=requester,
            now=now,
            cost=cost,
        )

    mine = on(own)
    if room is None:
        return mine, own
    try:
        effective = compose(*(r for r in (own, room) if r is not None))
    except PolicyDenied as exc:
        why = f"with the room policy: {exc.detail}"
        return Decision(False, False, (*mine.reasons, why), (*mine.failed, why)), own
    both = on(effective)
    theirs = on(room)
    reasons = tuple(f"with the room policy: {r}" for r in both.reasons)
    failed = tuple(
        dict.fromkeys(f"with the room policy: {r}" for r in (*both.failed, *theirs.failed))
    )
    return (
        Decision(
            mine.allowed and both.allowed and theirs.allowed,
            mine.automatic and both.automatic,
            (*mine.reasons, *reasons),
            (*mine.failed, *failed),
        ),
        effective,
    )
