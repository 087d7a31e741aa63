"""A room's runs as no-trust protocols, from one party's side (:mod:`sealroom.protocols.queries`).

The host requests the run (:func:`request_run`): a signed request naming the protocol,
its parameters and the members' datasets, under the room's policy. Each data owner
approves its input by hand (:func:`approve_run`; in a risky room after two people of
the organisation approved, as for any run). Then every participant calls
:func:`run` with its own data: the host opens the run's session, the others join
it, and the protocol runs over the relay.

Before it sends a byte, each participant checks, itself, what the coordinator
says: the request's signature; that its protocol, version and code are this
release's and among the room's allowed queries (from the room's signed
snapshot); that its parameters are canonical and respect the room's k; that the
room has not expired; that the participants follow from the request and the
inputs' signed attestations; that every other owner's newest signed decision is a
consent and, in a risky room, that two people of each owner signed approvals
(:func:`~sealroom.policy.room_admission.check_room_admits`, the enclave's own check);
and, for an owner, that it approved the run and consents to the room by its own
records (``<home>/rooms.json``), whatever the coordinator says. Each owner's data is re-read from its own files
and checked against the dataset's attested commitment, so a run uses exactly the
attested data. The run's hub (the first role) hands the co-signed receipts to
the coordinator, which logs them and completes the request.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealroom.client import flows
from sealroom.client.columns import column, training_arrays
from sealroom.client.http import Client
from sealroom.client.local import record_protocol_run, recorded_consent, recorded_protocol_run
from sealroom.client.protocol_runs import ProtocolRun, run_federated, run_he, run_pjc, run_psi
from sealroom.client.relay import Session, join_session, open_session
from sealroom.client.rooms import VerifiedRoom, open_room
from sealroom.crypto.keys import Identity, b64encode
from sealroom.errors import (
    ConsentMissing,
    InvalidInput,
    NotFound,
    PolicyDenied,
    ProtocolError,
    QueryNotAllowed,
    RoomClosed,
)
from sealroom.policy.room_admission import check_room_admits
from sealroom.protocols.channel import DEFAULT_TIMEOUT
from sealroom.protocols.queries import ProtocolQuery, protocol_query, protocol_ref
from sealroom.statements import (
    Approval,
    ComputationRequest,
    OrgMember,
    RoomConsent,
    RunApproval,
    Signed,
    sign_statement,
)
from sealroom.wire import RequestView

__all__ = ["CheckedProtocolRun", "RunData", "approve_run", "check_run", "request_run", "run"]


@dataclass(frozen=True, slots=True)
class CheckedProtocolRun:
    """A protocol run this party checked: the request, its room, and who plays which role."""

    request: Signed[ComputationRequest]
    room: VerifiedRoom
    query: ProtocolQuery
    parameters: Mapping[str, Any]
    roles: tuple[tuple[str, str], ...]
    owners: tuple[str, ...]
    """The owner of each input, in the request's order (from the signed attestations)."""
    status: str

    def inputs_of(self, party: str) -> list[str]:
        return [
            d for d, o in zip(self.request.statement.inputs, self.owners, strict=True) if o == party
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunData:
    """Which columns of this party's attested data the protocol uses.

    PSI: ``key_column`` (the set). PJC: ``key_column`` (identifiers) and, for the party
    whose values are summed (role ``b``), ``value_column`` (integers). Training (he, secagg): the
    ``features`` and the 0/1 ``label`` columns (owners only; the trainer brings none).
    """

    key_column: str | None = None
    value_column: str | None = None
    features: tuple[str, ...] = ()
    label: str | None = None


def _room_of(client: Client, policy: str | None) -> VerifiedRoom:
    if policy is None:
        raise InvalidInput("a protocol run is requested in a room (the request names no room)")
    for view in client.rooms():
        room = open_room(view)
        if room.room.statement.snapshot.policy == policy:
            return room
    raise NotFound("the run's room is not one of yours")


def request_run(
    client: Client,
    identity: Identity,
    room: str,
    protocol: str,
    datasets: Sequence[str],
    params: Mapping[str, Any],
    *,
    now: int,
    ttl: int = flows.DEFAULT_TTL,
    home: Path | None = None,
) -> RequestView:
    """The host requests a run of ``protocol`` on ``datasets`` under ``room``'s policy."""
    verified = open_room(client.room(room), room)
    snapshot = verified.room.statement.snapshot
    ref = protocol_ref(protocol)
    if ref not in snapshot.allowed_queries:
        allowed = ", ".join(f"{q.id} {q.version}" for q in snapshot.allowed_queries)
        raise QueryNotAllowed(f"{ref.id} is not among the room's allowed queries ({allowed})")
    query = protocol_query(ref)
    assert query is not None  # protocol_ref names a protocol query
    owners = [flows._open_dataset(client, d).statement.owner for d in datasets]
    roles = query.roles(identity.party_id, owners)
    parameters = dict(query.parameters(params, k=snapshot.k, roles=roles))
    request = ComputationRequest.build(
        requester=identity.party_id,
        computation=ref,
        parameters=parameters,
        inputs=tuple(datasets),
        recipients=tuple(p for _, p in roles),
        nonce=b64encode(os.urandom(16)),
        created_at=now,
        expires_at=now + min(ttl, max(1, snapshot.expires_at - now)),
        room_policy=snapshot.policy,
    )
    return flows.submit_request(client, identity, request, home=home)


def check_run(
    client: Client,
    identity: Identity,
    request: str,
    *,
    home: Path,
    now: int,
    approving: bool = False,
) -> CheckedProtocolRun:
    """Everything this party checks before taking part (see the module docstring); with
    ``approving``, before approving it (the request is pending, its own approval to come)."""
    view, req = flows._open_request(client, request)
    query = protocol_query(req.statement.computation)
    if query is None:
        raise InvalidInput(f"request {request} runs in an enclave, not as a protocol")
    if approving and view.status != "pending":
        raise PolicyDenied(f"request {request} is {view.status}; nothing to approve")
    room = _room_of(client, req.statement.room_policy)
    snapshot = room.room.statement.snapshot
    if req.statement.computation not in snapshot.allowed_queries:
        raise QueryNotAllowed(f"{query.id} is not among the room's allowed queries")
    if req.statement.requester != snapshot.host:
        raise PolicyDenied("only the room's host starts runs in it")
    if snapshot.expires_at <= now:
        raise RoomClosed(f"the room expired at {snapshot.expires_at}")
    owners = tuple(flows._open_dataset(client, d).statement.owner for d in req.statement.inputs)
    roles = query.roles(req.statement.requester, owners)
    parameters = query.parameters(req.statement.parameters, k=snapshot.k, roles=roles)
    if sorted(req.statement.recipients) != sorted(p for _, p in roles):
        raise PolicyDenied("the run's recipients are not exactly its participants")
    me = identity.party_id
    if me not in {p for _, p in roles}:
        raise NotFound(f"this party takes no part in request {request}")
    # Its own decisions as it recorded them, whatever the coordinator says.
    if (
        me in owners
        and me != snapshot.host
        and recorded_consent(home, snapshot.policy) != "consent"
    ):
        raise ConsentMissing("this party does not consent to the room's policy snapshot")
    if not approving:
        if me in owners and not recorded_protocol_run(home, request, "approved"):
            raise PolicyDenied("this party has not approved its inputs of this run")
        if recorded_protocol_run(home, request, "ran"):
            raise PolicyDenied("this party took part in this run already; a run runs once")
        # Everyone's consents and the people's approvals, from their signed statements.
        logged = [s.envelope for s in client.room_statements(room.digest).statements]
        check_room_admits(
            room.room.envelope,
            room.policy,
            owners=owners,
            consents=[e for e in logged if e.type == RoomConsent.TYPE],
            org_members=[e for e in logged if e.type == OrgMember.TYPE],
            run_approvals=[e for e in logged if e.type == RunApproval.TYPE],
            request=request,
            now=now,
        )
    return CheckedProtocolRun(
        request=req,
        room=room,
        query=query,
        parameters=parameters,
        roles=roles,
        owners=owners,
        status=view.status,
    )


def approve_run(
    client: Client,
    identity: Identity,
    request: str,
    *,
    home: Path,
    now: int,
    reason: str = "approved by the owner for a protocol run",
) -> RequestView:
    """Approve, by hand, each of this party's inputs of a protocol run it checked."""
    checked = check_run(client, identity, request, home=home, now=now, approving=True)
    view = client.get_request(request)
    pending = [i for i in view.inputs if i.owner == identity.party_id and i.decision == "pending"]
    if not pending:
        raise NotFound(f"request {request} has no input of yours waiting for a decision")
    for item in pending:
        approval = sign_statement(
            Approval(
                request=checked.request.digest,
                dataset=item.dataset,
                approver=identity.party_id,
                decision="approve",
                mode="manual",
                policy=None,
                reason=reason[:2000],
                conditions=(),
                created_at=now,
            ),
            identity,
        )
        record_protocol_run(home, request, "approved", at=now)
        view = client.post_approval(request, approval.envelope)
    return view


def _session(
    client: Client, checked: CheckedProtocolRun, identity: Identity, *, timeout: float
) -> Session:
    request = checked.request.digest
    protocol = checked.query.protocol
    if identity.party_id == checked.request.statement.requester:
        session = open_session(client, protocol=protocol, roles=checked.roles, request=request)
    else:
        session = join_session(
            client,
            protocol=protocol,
            expect=[p for _, p in checked.roles],
            wait=timeout,
            request=request,
        )
    got = tuple((r, session.parties[r].party_id) for r in session.roles)
    if got != checked.roles or session.request != request:
        raise ProtocolError(f"session {session.id} is not the run's (roles {got})")
    return session


def _column(table: Any, name: str | None, what: str) -> list[Any]:
    if name is None:
        raise InvalidInput(f"name the {what} column")
    values = column(table, name)
    if any(v is None for v in values):
        raise InvalidInput(f"column {name!r} has empty cells")
    return values


def run(
    client: Client,
    identity: Identity,
    request: str,
    data: RunData,
    *,
    home: Path,
    now: int,
    timeout: float = DEFAULT_TIMEOUT,
) -> ProtocolRun:
    """Take part in the protocol run ``request`` with this party's attested data; the hub
    hands the co-signed receipts in (the request completes)."""
    import pyarrow as pa

    checked = check_run(client, identity, request, home=home, now=now)
    me = identity.party_id
    inputs = checked.inputs_of(me)
    tables = [
        flows._load_checked(flows._open_dataset(client, d), data_path=None, home=home)
        for d in inputs
    ]
    table = pa.concat_tables(tables) if tables else None
    role = next(r for r, p in checked.roles if p == me)
    # Everything is read and checked before the session opens: a bad column must not leave
    # a started run behind.
    start = _prepare(checked, table, data, role=role, inputs=inputs, timeout=timeout)
    session = _session(client, checked, identity, timeout=timeout)
    record_protocol_run(home, request, "ran", at=now)  # before any data leaves
    done = start(client, session)
    if session.me == session.roles[0]:  # the hub hands in the co-signed receipts
        client.post_protocol_receipts(request, [r.envelope for r in done.record.receipts])
    return done


Start = Callable[[Client, Session], ProtocolRun]


def _prepare(
    checked: CheckedProtocolRun,
    table: Any,
    data: RunData,
    *,
    role: str,
    inputs: list[str],
    timeout: float,
) -> Start:
    """This party's side of the run with its data already read: a function of the session."""
    protocol = checked.query.protocol
    params = dict(checked.parameters)
    if protocol == "psi":
        from sealroom.protocols import psi

        elements = [str(v).encode() for v in _column(table, data.key_column, "key")]
        psi_params = psi.PsiParams(**params)
        return lambda client, session: run_psi(
            client, session, elements=elements, params=psi_params, inputs=inputs, timeout=timeout
        )
    if protocol == "pjc":
        from sealroom.protocols import pjc

        ids = [str(v).encode() for v in _column(table, data.key_column, "key")]
        values: list[int] | None = None
        if role == "b":
            values = _column(table, data.value_column, "value")
            if not all(type(v) is int for v in values):
                raise InvalidInput(f"column {data.value_column!r} must hold integers only")
        pjc_params = pjc.PjcParams(**params)
        return lambda client, session: run_pjc(
            client,
            session,
            ids=ids,
            values=values,
            params=pjc_params,
            inputs=inputs,
            timeout=timeout,
        )
    arrays = None
    if table is not None:
        if data.label is None:
            raise InvalidInput("name the label column")
        arrays = training_arrays(table, features=data.features, label=data.label)
    if protocol == "secagg":
        from sealroom.protocols import fedavg, queries

        config = queries.fedavg_config(params)
        owned = None if arrays is None else fedavg.OwnerData(*arrays)
        return lambda client, session: run_federated(
            client,
            session,
            config=config,
            features=data.features,
            data=owned,
            inputs=inputs,
            timeout=timeout,
            dropout_timeout=timeout,
        )
    from sealroom.protocols import he

    he_params = he.HeParams(**params)
    return lambda client, session: run_he(
        client,
        session,
        params=he_params,
        features=data.features,
        data=arrays,
        inputs=inputs,
        timeout=timeout,
    )
