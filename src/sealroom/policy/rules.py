"""Dataset policy rules and the decision they give on a request.

The rules live inside a signed :class:`~sealroom.statements.Policy`; this module
gives them meaning. Three places evaluate the same rules with the same code:
the coordinator (a pre-check that routes or rejects early), the owner's client
(automatic approval, signed by the owner's key and attributed to the policy),
and the enclave (which trusts neither of the others and checks again).

Fail closed: a policy that allows nothing denies everything, a computation
of privacy class ``content`` is never approved automatically, an expired
policy denies, and a computation that spends differential-privacy budget is
denied unless the policy declares a budget (``dp``) that can cover one run.

Exact releases come only from shapes the owner pinned. A computation whose
release depends on choices the requester makes (its isolating parameters, or
other inputs that select the protected rows: see
:class:`~sealroom.policy.privacy.ComputationInfo`) is allowed by default only
as differential privacy (``dp: "required"``). An owner who allows it exactly
(``dp: "optional"`` or ``"off"``) pins every isolating parameter and the
partner datasets in ``pinned``; an exact request must match them to the
letter. Every refusal names its rule (``rule <name>: ...``), and the same
text comes from the coordinator's pre-check, the owner's client and the
enclave, because all three call :func:`decide`.

Revocation. Every job needs the owner's fresh signed approval of that exact
request AND the owner's own sealed upload of the data for it; nothing the
owner signed earlier lets a job run without the owner acting again. An owner
revokes by withdrawing the dataset (the coordinator stops routing requests)
and approving no further requests; ``expires_at`` makes a policy's automatic
approvals lapse without any action at all.

Budgets (``dp``, ``max_queries``) are enforced by the enclave's ledger
(:mod:`sealroom.enclave.ledger`), charged before anything is computed; here
``decide`` only refuses a run whose cost could never fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from sealroom.attestation.pins import EnclavePin, parse_enclave_pin
from sealroom.errors import InvalidInput
from sealroom.policy.privacy import (
    DEFAULT_K,
    ComputationInfo,
    DpMode,
    PrivacyContext,
    PrivacyCost,
    RequestShape,
)
from sealroom.policy.sql_rules import SqlAnalysisRules
from sealroom.statements.canonical import canonical_json
from sealroom.statements.fields import (
    B64Hash,
    DecimalStr,
    Identifier,
    PartyIdStr,
    UnixTime,
    parse_object,
)

__all__ = [
    "BitBudget",
    "ColumnName",
    "ComputationRule",
    "Decision",
    "DpBudget",
    "Pinned",
    "PolicyRules",
    "QueryLimit",
    "decide",
    "default_dp_mode",
    "privacy_context",
]

_VERSION = r"^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}$"


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Pinned(_Rules):
    """The one shape in which an owner allows a computation to release exactly.

    ``params``: isolating parameter -> the only value a request may give it (compared as
    canonical JSON). ``partners``: the data that may be the request's other inputs, for
    computations whose other inputs select rows, named by content commitment root
    (``attestation.commitment.root``): the exact bytes, whoever publishes them under
    whatever policy, and without a cycle when two owners pin each other.
    """

    params: Annotated[dict[Identifier, JsonValue], Field(max_length=64)] = Field(
        default_factory=dict
    )
    partners: Annotated[tuple[B64Hash, ...], Field(max_length=1000)] = ()


class ComputationRule(_Rules):
    """A computation id and the half-open version range ``[min_version, below_version)``.

    In ``allow``, ``dp`` says how the computation may release (None: the default for the
    computation, :func:`default_dp_mode`) and ``pinned`` the shape of exact releases.
    """

    id: Identifier
    min_version: Annotated[str, Field(pattern=_VERSION)] = "0.0.0"
    below_version: Annotated[str, Field(pattern=_VERSION)] | None = None
    dp: DpMode | None = None
    pinned: Pinned | None = None

    @model_validator(mode="after")
    def _range(self) -> ComputationRule:
        if self.below_version is not None and _version_key(self.below_version) <= _version_key(
            self.min_version
        ):
            raise ValueError("below_version must be greater than min_version")
        if self.dp == "required" and self.pinned is not None:
            raise ValueError("a rule with dp 'required' releases nothing exactly: drop 'pinned'")
        return self

    def matches(self, computation: ComputationInfo) -> bool:
        v = _version_key(computation.version)
        return (
            computation.id == self.id
            and v >= _version_key(self.min_version)
            and (self.below_version is None or v < _version_key(self.below_version))
        )


ColumnName = Annotated[str, Field(min_length=1, max_length=200)]
_Columns = Annotated[tuple[ColumnName, ...], Field(max_length=1000)]


class DpBudget(_Rules):
    """Differential-privacy budgets as canonical decimal strings (exact, never floats).

    ``*_per_requester``: the most one requester may spend on the dataset, ever;
    ``*_total``: the most all requesters together may spend.
    """

    epsilon_per_requester: DecimalStr
    epsilon_total: DecimalStr
    delta_per_requester: DecimalStr = "0"
    delta_total: DecimalStr = "0"

    @model_validator(mode="after")
    def _order(self) -> DpBudget:
        if Decimal(self.epsilon_per_requester) > Decimal(self.epsilon_total):
            raise ValueError("epsilon_per_requester cannot exceed epsilon_total")
        if Decimal(self.delta_per_requester) > Decimal(self.delta_total):
            raise ValueError("delta_per_requester cannot exceed delta_total")
        if Decimal(self.delta_total) >= 1:
            raise ValueError("delta_total must be below 1")
        return self


class BitBudget(_Rules):
    """Bit budgets for exact releases whose content requester code chooses (quality-score).

    A run charges log2 of the number of distinct outputs it could give (a failure is one
    of them). ``per_requester``: the most one requester may draw from the dataset, ever
    (best effort: identities are free); ``total``: the most all requesters together may,
    which binds. Canonical decimal strings, summed exactly.
    """

    per_requester: DecimalStr
    total: DecimalStr

    @model_validator(mode="after")
    def _order(self) -> BitBudget:
        if Decimal(self.per_requester) > Decimal(self.total):
            raise ValueError("bits per_requester cannot exceed total")
        return self


class QueryLimit(_Rules):
    """At most ``count`` jobs per requester on the dataset in any ``period_seconds`` window."""

    count: Annotated[int, Field(ge=1, le=1_000_000)]
    period_seconds: Annotated[int, Field(ge=1, le=100 * 366 * 86400)]


class PolicyRules(_Rules):
    """What an owner allows on one dataset.

    ``allow`` lists the computations anyone may request (an empty list allows
    none); ``auto_approve`` lists those the owner's client approves without
    asking; ``requesters`` is ``"any"`` or an allowlist of party ids; ``k`` is
    the minimum number of DISTINCT entities (values of ``entity_column``; rows
    when it is None) a released term or group must occur in. ``dp`` is the DP
    budget (None: no DP computation may run); ``bits`` the bit budget of computations
    that run requester code (None: none may run); ``max_queries`` limits jobs per
    requester and period; ``never_output`` columns never appear in an output and
    ``join_only`` columns only join or match; ``max_output_rows`` caps row-shaped
    outputs; after ``expires_at`` (unix time) the policy denies everything;
    ``sql`` admits requester SQL (None: none); ``retention_seconds`` is how long
    the coordinator may keep a completed request's sealed results (and sealed
    inputs) on this dataset after completion (None: no limit). ``enclave`` pins
    the enclaves the owner's data may be sealed to and a receipt may come from
    (:func:`sealroom.attestation.pins.parse_enclave_pin`: ``measurements`` and/or
    ``simulation_root``, and ``max_evidence_age`` in seconds for sealing decisions).
    ``region``: only an enclave whose attested key document declares this region may
    receive the data and run the job (None: any region). ``consent_required`` marks a
    room's policy: the enclave runs a job under it only with the room statement that names
    it and a signed consent to that room's snapshot from every input owner but the host.
    """

    allow: Annotated[tuple[ComputationRule, ...], Field(max_length=64)] = ()
    auto_approve: Annotated[tuple[ComputationRule, ...], Field(max_length=64)] = ()
    requesters: Literal["any"] | Annotated[tuple[PartyIdStr, ...], Field(max_length=1000)] = "any"
    k: Annotated[int, Field(ge=1, le=1_000_000)] = DEFAULT_K
    entity_column: ColumnName | None = None
    dp: DpBudget | None = None
    bits: BitBudget | None = None
    max_queries: QueryLimit | None = None
    join_only: _Columns = ()
    never_output: _Columns = ()
    max_output_rows: Annotated[int, Field(ge=1, le=100_000_000)] | None = None
    expires_at: UnixTime | None = None
    sql: SqlAnalysisRules | None = None
    retention_seconds: Annotated[int, Field(ge=1, le=100 * 366 * 86400)] | None = None
    enclave: dict[str, JsonValue] | None = None
    region: Identifier | None = None
    consent_required: bool = False

    @model_validator(mode="after")
    def _enclave_pin_parses(self) -> PolicyRules:
        if self.enclave is not None:
            try:
                parse_enclave_pin(self.enclave)
            except InvalidInput as exc:
                raise ValueError(exc.detail or exc.public_message) from None
        return self

    @property
    def enclave_pin(self) -> EnclavePin | None:
        """The enclave the owner accepts for this dataset (None: the policy pins none)."""
        return None if self.enclave is None else parse_enclave_pin(self.enclave)

    @model_validator(mode="after")
    def _automatic_rules_only_name(self) -> PolicyRules:
        for rule in self.auto_approve:
            if rule.dp is not None or rule.pinned is not None:
                raise ValueError(
                    f"auto_approve entry {rule.id!r}: 'dp' and 'pinned' belong in 'allow' "
                    "(automatic approval only names what 'allow' admits)"
                )
        return self

    @classmethod
    def parse(cls, rules: Mapping[str, object]) -> PolicyRules:
        """Validate the ``rules`` object of a Policy statement, or raise :class:`InvalidInput`."""
        return parse_object(cls, dict(rules), what="policy rules")


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of evaluating rules on one request.

    ``reasons`` has one sentence per rule checked, in order, passing or not;
    ``failed`` the sentences of the rules that denied (empty when allowed).
    """

    allowed: bool
    automatic: bool
    reasons: tuple[str, ...]
    failed: tuple[str, ...] = field(default=())

    @property
    def reason(self) -> str:
        """Why it was denied (the failing rules), or every reason when allowed."""
        return "; ".join(self.failed or self.reasons)


def default_dp_mode(computation: ComputationInfo) -> DpMode:
    """``required`` for a requester-parametrised computation, ``optional`` for the others.

    A computation nothing of whose release the requester chooses (no isolating
    parameters, no selecting inputs) has no shape to pin, so it may release exactly.
    """
    return "required" if computation.isolating or computation.selectors else "optional"


def _admit(rule: ComputationRule, computation: ComputationInfo, request: RequestShape) -> str:
    """Why ``rule`` does not admit ``request`` ("" when it does)."""
    label = f"{computation.id} {computation.version}"
    mode = rule.dp or default_dp_mode(computation)
    if request.dp:
        if mode == "off":
            return (
                f"rule dp-off: the policy allows {label} only as the exact release of its "
                "pinned shape, not with differential privacy"
            )
        return ""
    if mode == "required":
        return (
            f"rule dp-required: the policy allows {label} only with differential privacy "
            "(the request releases exact values; add its dp parameters)"
        )
    pinned = rule.pinned or Pinned()
    for name in computation.isolating:
        if name not in pinned.params:
            return (
                f"rule exact-shape-pinned: an exact {label} needs the owner to pin its "
                f"parameter {name!r}, and the policy does not"
            )
        want = canonical_json(pinned.params[name])
        got = canonical_json(request.params.get(name))
        if want != got:
            return (
                f"rule exact-shape-pinned: parameter {name!r} is pinned to "
                f"{want.decode()}, the request gives {got.decode()}"
            )
    if computation.selectors:
        stray = sorted(request.partners - set(pinned.partners))
        if stray:
            return (
                f"rule exact-partners-pinned: an exact {label} may only be computed with the "
                f"partner data the policy pins; the input with content root {stray[0]} is not "
                "one of them"
            )
    return ""


def decide(
    rules: PolicyRules | None,
    *,
    computation: ComputationInfo,
    request: RequestShape,
    requester: str,
    now: int | None = None,
    cost: PrivacyCost | None = None,
) -> Decision:
    """Evaluate ``rules`` (None: the dataset has no policy) for one request on one input.

    Without a policy a request may be made and waits for a person, who then decides
    on the exact request. With one, every rule is checked and reported: expiry (when
    ``now`` is given; the enclave always gives it), ``requesters``, ``allow`` (the
    computation and version, then how it releases: DP or the pinned exact shape),
    and, when ``cost`` is given, whether the DP budget could cover one run. It is
    automatic only if allowed, ``auto_approve`` also matches and the computation does
    not reveal content.
    """
    if rules is None:
        return Decision(
            allowed=True,
            automatic=False,
            reasons=("the dataset has no policy; the owner decides by hand",),
        )
    label = f"{computation.id} {computation.version}"
    reasons: list[str] = []
    failed: list[str] = []

    def check(ok: bool, passed: str, denied: str) -> None:
        reasons.append(passed if ok else denied)
        if not ok:
            failed.append(denied)

    if rules.expires_at is not None and now is not None:
        check(
            now < rules.expires_at,
            f"the policy is in force until {rules.expires_at}",
            f"rule expires-at: the policy expired at {rules.expires_at} (now {now})",
        )
    if rules.requesters == "any":
        reasons.append("the policy admits any requester")
    else:
        check(
            requester in rules.requesters,
            f"requester {requester} is on the policy's allowlist",
            f"rule requesters: requester {requester} is not on the policy's allowlist",
        )
    matching = [r for r in rules.allow if r.matches(computation)]
    if not matching:
        check(False, "", f"rule allow: the policy does not allow {label}")
    else:
        refusals = [_admit(r, computation, request) for r in matching]
        how = "with differential privacy" if request.dp else "exactly, in its pinned shape"
        check(
            "" in refusals,
            f"the policy allows {label} {how}"
            if request.dp or computation.isolating or computation.selectors
            else f"the policy allows {label}",
            refusals[0],
        )
    if cost is not None:
        _check_cost(rules, cost, label, check, reasons)
    if failed:
        return Decision(False, False, tuple(reasons), tuple(failed))
    if not any(r.matches(computation) for r in rules.auto_approve):
        reasons.append("not listed for automatic approval; the owner decides by hand")
        return Decision(True, False, tuple(reasons))
    if computation.privacy_class == "content":
        reasons.append("reveals record content, so never approved automatically")
        return Decision(True, False, tuple(reasons))
    reasons.append(f"the policy approves {label} automatically (k={rules.k})")
    return Decision(True, True, tuple(reasons))


def _check_cost(
    rules: PolicyRules,
    cost: PrivacyCost,
    label: str,
    check: Callable[[bool, str, str], None],
    reasons: list[str],
) -> None:
    if cost.bits:
        bits = rules.bits
        check(
            bits is not None and cost.bits <= Decimal(bits.per_requester),
            f"{label} releases at most {cost.bits} bits per run, within the per-requester "
            f"bit budget ({bits.per_requester if bits else ''})",
            f"rule bits-budget: {label} releases up to {cost.bits} bits per run and the "
            + (
                f"per-requester bit budget is {bits.per_requester}"
                if bits is not None
                else "policy sets no bit budget"
            ),
        )
    spend = f"epsilon {cost.epsilon}, delta {cost.delta}"
    if not cost.is_dp:
        reasons.append(f"{label} spends no differential-privacy budget")
        return
    if rules.dp is None:
        check(
            False,
            "",
            f"rule dp-budget: {label} spends {spend} per run and the policy sets no DP budget",
        )
        return
    budget = rules.dp
    fits = cost.epsilon <= Decimal(budget.epsilon_per_requester) and cost.delta <= Decimal(
        budget.delta_per_requester
    )
    check(
        fits,
        f"{label} spends {spend} per run, within the per-requester budget "
        f"(epsilon {budget.epsilon_per_requester}, delta {budget.delta_per_requester})",
        f"rule dp-budget: {label} spends {spend} per run, more than the per-requester budget "
        f"(epsilon {budget.epsilon_per_requester}, delta {budget.delta_per_requester})",
    )


def privacy_context(rules: Sequence[PolicyRules | None], cost: PrivacyCost) -> PrivacyContext:
    """What a computation may release, per input, under the effective rules (None: no policy)."""
    caps = [r.max_output_rows for r in rules if r is not None and r.max_output_rows is not None]
    return PrivacyContext(
        k=tuple(r.k if r is not None else DEFAULT_K for r in rules),
        entity_columns=tuple(r.entity_column if r is not None else None for r in rules),
        never_output=tuple(frozenset(r.never_output if r else ()) for r in rules),
        join_only=tuple(frozenset(r.join_only if r else ()) for r in rules),
        max_output_rows=min(caps) if caps else None,
        cost=cost,
        analysis=tuple(
            r.sql.model_dump(mode="json") if r is not None and r.sql is not None else None
            for r in rules
        ),
    )
