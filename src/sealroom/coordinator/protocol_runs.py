"""No-trust protocol runs under requests: the session that starts one, the receipts that end it.

A protocol run (:mod:`sealroom.protocols.queries`) is requested, checked and
approved like any run in a room. Then:

- :func:`start_session` (called by the relay, in the transaction that creates the
  session): only the requester, only while the request is ``approved`` and the room
  still admits it (open, every input's owner consenting), only with exactly the
  participants the request implies, and only once; the request becomes ``running``,
  so a consent withdrawn afterwards no longer stops it (it has started everywhere);
- :meth:`ProtocolRuns.complete`: any participant hands in the co-signed receipts;
  they must verify as one run (every participant signed, streams agree) and
  describe *this* run (its session, request, protocol code, parameters,
  participants and each one's inputs); each is logged and the request completes.

A run whose receipts never come fails when the request expires (:meth:`State.sweep`).
The coordinator learns no more than the relay already shows plus the receipts,
which are private statements (logged as salted commitments).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import Connection, select, update

from sealroom.coordinator.rooms import check_room_run, room_event, room_of_request
from sealroom.coordinator.state import State, request_row, request_view, statement, transition
from sealroom.crypto.keys import PartyId
from sealroom.errors import Conflict, InvalidInput, PolicyDenied, VerificationFailed
from sealroom.protocols.queries import PROTOCOL_QUERIES, ProtocolQuery
from sealroom.protocols.receipts import verify_run
from sealroom.statements import ComputationRequest, Envelope, canonical_json
from sealroom.storage.engine import write_transaction
from sealroom.storage.schema import protocol_runs, request_inputs
from sealroom.wire import CreateSessionBody, RequestView

__all__ = ["ProtocolRuns", "receipts_of", "start_session"]

MAX_RECEIPTS = 200


def _query(computation_id: str, request: str) -> ProtocolQuery:
    query = PROTOCOL_QUERIES.get(computation_id)
    if query is None:
        raise InvalidInput(f"request {request} is not a protocol run")
    return query


def _request(conn: Connection, request: str) -> ComputationRequest:
    env, _ = statement(conn, request, ComputationRequest.TYPE)
    return ComputationRequest.parse_payload(env.payload)


def _owners(conn: Connection, request: str) -> list[tuple[str, str]]:
    """(dataset, owner) of each input, in the request's order."""
    return [
        (str(r.dataset), str(r.owner))
        for r in conn.execute(
            select(request_inputs.c.dataset, request_inputs.c.owner)
            .where(request_inputs.c.request == request)
            .order_by(request_inputs.c.position)
        )
    ]


def start_session(conn: Connection, body: CreateSessionBody, *, caller: PartyId, now: int) -> None:
    """Admit a relay session for the protocol run ``body.request`` (raises otherwise)."""
    request = str(body.request)
    row = request_row(conn, request, caller)
    query = _query(str(row.computation_id), request)
    if body.protocol != query.protocol:
        raise InvalidInput(f"the run is {query.id}; the session names {body.protocol}")
    if row.requester != caller:
        raise PolicyDenied("only the run's requester starts its session")
    if conn.execute(
        select(protocol_runs.c.session).where(protocol_runs.c.request == request)
    ).first():
        raise Conflict("this run's session has started already; a run runs once")
    if row.status != "approved":
        raise Conflict(
            f"the run is {row.status}: its session starts only once every owner approved it"
        )
    req = _request(conn, request)
    expected = query.roles(req.requester, [o for _, o in _owners(conn, request)])
    given = tuple((m.role, m.party) for m in body.participants)
    if given != expected:
        raise InvalidInput(
            "the session's participants must be exactly the run's, in order: "
            + ", ".join(f"{r}={p}" for r, p in expected)
        )
    room = room_of_request(conn, req)
    if room is not None:  # still open, every owner still consenting
        check_room_run(conn, room, req, epsilon=Decimal(0), now=now)
    conn.execute(
        protocol_runs.insert().values(request=request, session=body.session, started_at=now)
    )
    transition(
        conn,
        request,
        ("approved",),
        "running",
        f"the parties started {query.id} in session {body.session}",
        now,
    )
    if room is not None:
        room_event(
            conn,
            str(room.room),
            "run-started",
            f"{query.id} started between the parties (session {body.session})",
            now,
            party=caller,
            request=request,
        )


class ProtocolRuns:
    __slots__ = ("_state",)

    def __init__(self, state: State) -> None:
        self._state = state

    def complete(
        self, request: str, envelopes: Sequence[Envelope], *, caller: PartyId, now: int
    ) -> RequestView:
        """Check the run's co-signed receipts, log each, and complete the request."""
        if not 1 <= len(envelopes) <= MAX_RECEIPTS:
            raise InvalidInput(f"send between 1 and {MAX_RECEIPTS} receipts")
        with write_transaction(self._state.engine) as conn:
            row = request_row(conn, request, caller)  # first: others learn nothing more
            query = _query(str(row.computation_id), request)
            req = _request(conn, request)
            inputs = _owners(conn, request)
            expected = query.roles(req.requester, [o for _, o in inputs])
            if caller not in {p for _, p in expected}:
                raise PolicyDenied("only a participant of the run hands in its receipts")
            receipts = verify_run(envelopes, require_all=True)
            digests = sorted(r.digest for r in receipts)
            run = conn.execute(  # locked: two participants handing in at once complete it once
                select(protocol_runs).where(protocol_runs.c.request == request).with_for_update()
            ).first()
            if run is None:
                raise Conflict("the run's session has not started")
            if run.receipts is not None:
                if json.loads(run.receipts) == digests:
                    return request_view(conn, request)
                raise Conflict("the run is complete with other receipts")
            if row.status != "running":
                raise Conflict(f"the run is {row.status}; it takes no receipts")
            first = receipts[0].statement
            if first.request != request or first.session != run.session:
                raise VerificationFailed(
                    f"the receipts describe session {first.session} of request {first.request}, "
                    f"not this run (session {run.session})"
                )
            approved = req.computation  # the code the owners approved, whatever runs here now
            if (first.protocol, f"{first.protocol_version}.0.0", first.code_digest) != (
                query.protocol,
                approved.version,
                approved.code_digest,
            ):
                raise VerificationFailed("the receipts name other protocol code than the request")
            if canonical_json(first.parameters) != canonical_json(req.parameters):
                raise VerificationFailed("the run used other parameters than the approved ones")
            if tuple((p.role, p.party) for p in first.participants) != expected:
                raise VerificationFailed("the receipts name other participants than the run's")
            for p in first.participants:
                own = sorted(d for d, o in inputs if o == p.party)
                if sorted(p.inputs) != own:
                    raise VerificationFailed(
                        f"{p.role} names inputs {sorted(p.inputs)}; its inputs in the run are {own}"
                    )
            for r in receipts:
                self._state.store(conn, r.envelope, now=now)
            conn.execute(
                update(protocol_runs)
                .where(protocol_runs.c.request == request)
                .values(completed_at=now, receipts=json.dumps(digests))
            )
            self._state.transition(
                conn,
                request,
                ("running",),
                "completed",
                f"{query.id} ran between the parties; {len(receipts)} co-signed receipts are "
                "in the log",
                now,
            )
            room = room_of_request(conn, req)
            if room is not None:
                room_event(
                    conn,
                    str(room.room),
                    "run-completed",
                    f"{query.id} completed; {len(receipts)} co-signed receipts logged",
                    now,
                    party=caller,
                    request=request,
                )
            return request_view(conn, request)


def receipts_of(conn: Connection, request: str) -> list[str]:
    """The logged receipt digests of a completed protocol run (empty: none)."""
    raw = conn.execute(
        select(protocol_runs.c.receipts).where(protocol_runs.c.request == request)
    ).scalar_one_or_none()
    return [] if raw is None else list(json.loads(raw))
