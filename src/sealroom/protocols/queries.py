"""No-trust protocols as requests: a protocol run named, approved and logged like a computation.

A room may let its runs execute as a protocol between the parties instead of in an
enclave. Such a run is an ordinary :class:`~sealroom.statements.ComputationRequest`
whose computation is a *protocol query*: ``protocol.<name>`` at the protocol's wire
version, with the digest of the protocol's code (:func:`code_digest`). Everything
that gates an enclave run gates it too (the room's allowed queries, consents, each
owner's signed approval, two approvers in a risky room); then:

- the relay opens the run's session only while the request is approved, only for
  its requester, and only with the participants this module derives from the
  request (:meth:`ProtocolQuery.roles`), and the request becomes ``running``;
- every participant's client checks the request, the room and the approvals
  before it sends anything, and runs with exactly the request's parameters;
- the co-signed receipts, each naming the request, go into the transparency log,
  and only receipts that describe this run with these parameters complete it.

Parameters are the protocol's own, in the form its receipts record them (floats of
federated training as their ``repr`` strings); training runs name the run's roles
(``aggregator`` or ``trainer``, then ``o1..on``).

Who learns what is each protocol's own contract (``docs/protocols/``). What a room
adds: the protocol's threshold may not be below the room's k. Protocol releases are
exact: no enclave holds a DP budget for them, so a room admits protocols only with
``dp: exact`` (which makes it risky: two approvers per party).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.protocols import pjc, psi
from sealroom.protocols.receipts import code_digest
from sealroom.statements import ComputationRef, canonical_json

if TYPE_CHECKING:  # numpy loads only when a run trains
    from sealroom.protocols.fedavg import FedAvgConfig

__all__ = [
    "PREFIX",
    "PROTOCOL_QUERIES",
    "ProtocolQuery",
    "fedavg_config",
    "is_protocol",
    "protocol_query",
    "protocol_ref",
]

PREFIX = "protocol."
# The wire versions of modules that load heavy libraries (TenSEAL, numpy) only when a run needs
# them: sealroom.protocols.he.VERSION and sealroom.protocols.secagg.VERSION.
_HE_VERSION = 1
_SECAGG_VERSION = 1

Roles = tuple[tuple[str, str], ...]


def _pair(requester: str, owners: Sequence[str]) -> Roles:
    """Two-party protocols: role ``a`` is the first input's owner, ``b`` the second's."""
    if len(owners) != 2 or owners[0] == owners[1]:
        raise InvalidInput("this protocol runs on exactly two inputs of two different owners")
    if requester not in owners:
        raise InvalidInput("the requester of a two-party protocol brings one of the two inputs")
    return (("a", owners[0]), ("b", owners[1]))


def _hub(hub: str) -> Callable[[str, Sequence[str]], Roles]:
    def roles(requester: str, owners: Sequence[str]) -> Roles:
        if len(owners) < 2 or len(set(owners)) != len(owners):
            raise InvalidInput("training runs on inputs of at least two different owners")
        if requester in owners:
            raise InvalidInput(f"the requester is the {hub} and brings no data")
        return ((hub, requester), *((f"o{i + 1}", o) for i, o in enumerate(owners)))

    return roles


def _psi(raw: Mapping[str, Any], k: int) -> Mapping[str, Any]:
    params = psi.PsiParams(**raw)
    if params.mode != "cardinality":
        raise PolicyDenied(
            "a room's PSI runs in cardinality mode: intersection mode would release the "
            "common identifiers themselves"
        )
    if params.threshold < k:
        raise PolicyDenied(f"the PSI threshold {params.threshold} is below the room's k ({k})")
    return params.as_dict()


def _pjc(raw: Mapping[str, Any], k: int) -> Mapping[str, Any]:
    params = pjc.PjcParams(**raw)
    if params.min_intersection < k:
        raise PolicyDenied(
            f"the PJC min_intersection {params.min_intersection} is below the room's k ({k})"
        )
    return params.as_dict()


def _he(raw: Mapping[str, Any], k: int) -> Mapping[str, Any]:
    from sealroom.protocols import he

    return he.HeParams(**raw).as_dict()


def _number(raw: Mapping[str, Any], name: str) -> float:
    """A float parameter, written as its ``repr`` (how the receipts record it)."""
    value = raw[name]
    if not isinstance(value, str):
        raise InvalidInput(f"{name} is written as a decimal string, such as '0.5'")
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(f"{name} is not a number: {value!r}") from None


def fedavg_config(raw: Mapping[str, Any]) -> FedAvgConfig:
    """The federated-training configuration ``raw`` (``FedAvgConfig.as_dict`` form) writes."""
    from sealroom.protocols import fedavg

    try:
        dp = raw["dp"]
        config = fedavg.FedAvgConfig(
            aggregator=raw["aggregator"],
            owners=tuple(raw["owners"]),
            features=raw["features"],
            rounds=raw["rounds"],
            local_steps=raw["local_steps"],
            learning_rate=_number(raw, "learning_rate"),
            l2=_number(raw, "l2"),
            threshold=raw["threshold"],
            aggregator_trains=raw["aggregator_trains"],
            update_bound=_number(raw, "update_bound"),
            modulus_bits=raw["modulus_bits"],
            standardize=raw["standardize"],
            dp=None
            if dp is None
            else fedavg.DPConfig(
                mechanism=dp["mechanism"],
                clip_norm=_number(dp, "clip_norm"),
                budget_per_round=_number(dp, "budget_per_round"),
                delta=_number(dp, "delta"),
            ),
        )
    except KeyError as exc:
        raise InvalidInput(f"protocol.secagg parameters: {exc.args[0]!r} is missing") from None
    return config


def _secagg(raw: Mapping[str, Any], k: int) -> Mapping[str, Any]:
    return fedavg_config(raw).as_dict()


@dataclass(frozen=True, slots=True)
class ProtocolQuery:
    """One protocol a room may run: how its participants follow from the request, and how
    its parameters are checked (against the room's k) and put in canonical form."""

    protocol: str
    version: int
    roles: Callable[[str, Sequence[str]], Roles]
    """``(requester, owners of the inputs in order) -> ((role, party), ...)``, hub first."""
    _canonical: Callable[[Mapping[str, Any], int], Mapping[str, Any]]

    @property
    def id(self) -> str:
        return PREFIX + self.protocol

    def ref(self) -> ComputationRef:
        return ComputationRef(
            id=self.id, version=f"{self.version}.0.0", code_digest=code_digest(self.protocol)
        )

    def parameters(self, raw: object, *, k: int, roles: Roles) -> Mapping[str, Any]:
        """The parameters, checked: they must already be in the protocol's canonical form
        (what its receipts will say), respect the room's ``k``, and (training) name the
        run's roles as its hub and owners."""
        if not isinstance(raw, Mapping):
            raise InvalidInput(f"{self.id} parameters must be an object")
        try:
            canonical = self._canonical(raw, k)
        except (TypeError, AttributeError) as exc:
            raise InvalidInput(f"{self.id} parameters: {exc}") from None
        owners = [r for r, _ in roles[1:]]
        if "owners" in canonical and list(canonical["owners"]) != owners:
            raise InvalidInput(f"{self.id} parameters must name the owners' roles {owners}")
        if "aggregator" in canonical and canonical["aggregator"] != roles[0][0]:
            raise InvalidInput(f"{self.id} parameters must name the hub's role {roles[0][0]!r}")
        if canonical_json(dict(canonical)) != canonical_json(dict(raw)):
            raise InvalidInput(
                f"{self.id} parameters must be given in full, as the run will record them: "
                f"{canonical_json(dict(canonical)).decode()}"
            )
        return canonical


PROTOCOL_QUERIES: Mapping[str, ProtocolQuery] = {
    q.id: q
    for q in (
        ProtocolQuery("psi", psi.VERSION, _pair, _psi),
        ProtocolQuery("pjc", pjc.VERSION, _pair, _pjc),
        ProtocolQuery("he", _HE_VERSION, _hub("trainer"), _he),
        ProtocolQuery("secagg", _SECAGG_VERSION, _hub("aggregator"), _secagg),
    )
}


def is_protocol(computation_id: str) -> bool:
    """Whether a computation id names a protocol run (``protocol.<name>``), not an enclave's."""
    return computation_id.startswith(PREFIX)


def protocol_ref(protocol: str) -> ComputationRef:
    """The computation reference naming ``protocol`` at this release's code."""
    query = PROTOCOL_QUERIES.get(PREFIX + protocol)
    if query is None:
        raise InvalidInput(f"no protocol {protocol!r} runs in rooms; known: {_known()}")
    return query.ref()


def protocol_query(ref: ComputationRef) -> ProtocolQuery | None:
    """The protocol ``ref`` names (None: it names an enclave computation).

    A ``protocol.`` reference at another version or code digest than this release's
    is refused: the parties would run other code than the one approved."""
    if not is_protocol(ref.id):
        return None
    query = PROTOCOL_QUERIES.get(ref.id)
    if query is None:
        raise InvalidInput(f"no protocol {ref.id!r}; known: {_known()}")
    ours = query.ref()
    if ref != ours:
        raise InvalidInput(
            f"{ref.id} {ref.version} (code {ref.code_digest}) is not the protocol code of this "
            f"release ({ours.version}, code {ours.code_digest})"
        )
    return query


def _known() -> str:
    return ", ".join(sorted(PROTOCOL_QUERIES))
