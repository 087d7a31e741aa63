"""Rooms: a host's signed room and policy snapshot, invitations, joins with a pre-check,
consents and their withdrawal, runs under the room, per-person approvals and red flags.

A run in a room is an ordinary computation request whose ``room_policy`` is the
room's policy digest, so the policy is enforced where it always is (this
pre-check, every owner's client, and the enclave, which composes it with each
input's policy: allowed queries, k, DP, expiry and region). What only the room
knows is checked here, in the same transaction as the request: the room is open,
the requester is its host, the computation is one of the allowed queries (exact
code digest), and every input's owner joined and consents to the current
snapshot. A withdrawal ends the room's open runs in the transaction that records
it, so no run that was about to start can be claimed afterwards.

Visibility: a room exists only for its members (host and invitees); anyone else
gets :class:`NotFound`, never a 403 that leaks its existence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from sealroom.coordinator.log import log_on
from sealroom.coordinator.state import (
    State,
    Stored,
    checkpoint_size,
    latest_checkpoint,
    statement,
    transition,
)
from sealroom.crypto.keys import PartyId
from sealroom.errors import (
    Conflict,
    ConsentMissing,
    DualApprovalRequired,
    InvalidInput,
    NotFound,
    PolicyDenied,
    QueryNotAllowed,
    RegionMismatch,
    RoomClosed,
    SignatureInvalid,
)
from sealroom.policy.rules import PolicyRules
from sealroom.protocols.queries import is_protocol, protocol_query
from sealroom.statements import (
    ComputationRequest,
    EnclaveEvidence,
    Envelope,
    OrgMember,
    Policy,
    Room,
    RoomConsent,
    RoomInvitation,
    RunApproval,
    canonical_json,
)
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.storage.schema import (
    datasets,
    org_members,
    parties,
    policies,
    protocol_runs,
    request_inputs,
    requests,
    room_events,
    room_members,
    room_runs,
    rooms,
    run_approvals,
    statements,
)
from sealroom.wire import (
    LoggedStatement,
    OrgMemberView,
    RoomEvent,
    RoomList,
    RoomMember,
    RoomRun,
    RoomStatements,
    RoomView,
)

__all__ = [
    "FEW_ENTITIES_FACTOR",
    "Rooms",
    "check_dual_approval",
    "check_region",
    "check_room_run",
    "record_room_run",
    "room_event",
    "room_k",
    "room_materials",
    "room_of_request",
]

# A member whose dataset has fewer than this many times k entities is red-flagged: with few
# entities, every released group is close to the threshold.
FEW_ENTITIES_FACTOR = 5
_MAX_EVENTS = 200
_MAX_LISTED = 100
_OPEN_RUN = ("pending", "approved")
_APPROVER_ROLES = ("approver", "admin")


def room_event(
    conn: Connection,
    room: str,
    kind: str,
    detail: str,
    now: int,
    *,
    party: str | None = None,
    request: str | None = None,
) -> None:
    conn.execute(
        room_events.insert().values(
            room=room, at=now, kind=kind, party=party, request=request, detail=detail
        )
    )


def _room_row(conn: Connection, room: str, caller: PartyId) -> Row[Any]:
    """The room's row if ``caller`` is its host or invited; otherwise it does not exist."""
    row = conn.execute(select(rooms).where(rooms.c.room == room)).first()
    member = conn.execute(
        select(room_members.c.party).where(
            room_members.c.room == room, room_members.c.party == caller
        )
    ).first()
    if row is None or member is None:
        raise NotFound(f"no room {room}")
    return row


def _check_policy_matches(room: Room, rules: PolicyRules) -> None:
    """The room policy says what the snapshot says (the snapshot is what members read)."""
    snap = room.snapshot
    allowed = sorted(r.id for r in rules.allow)
    enclave_queries = [q for q in snap.allowed_queries if not is_protocol(q.id)]
    if allowed != sorted(q.id for q in enclave_queries):
        raise InvalidInput("the room policy allows other computations than the snapshot lists")
    if len(enclave_queries) != len(snap.allowed_queries) and snap.dp.mode != "exact":
        raise InvalidInput(
            "a room that allows no-trust protocols sets dp to exact (their releases are exact; "
            "no enclave holds a DP budget for them)"
        )
    if rules.k != snap.k:
        raise InvalidInput("the room policy's k differs from the snapshot's")
    if rules.region != snap.region:
        raise InvalidInput("the room policy's region differs from the snapshot's")
    if rules.expires_at != snap.expires_at:
        raise InvalidInput("the room policy's expiry differs from the snapshot's")
    if rules.requesters != (snap.host,):
        raise InvalidInput("the room policy must admit the host, and only the host, to request")
    if not rules.consent_required:
        raise InvalidInput("a room policy must require the members' consent (consent_required)")
    if snap.template.risky and rules.auto_approve:
        raise InvalidInput("a risky room cannot approve runs automatically")
    if snap.dp.mode == "required":
        if any(r.dp != "required" for r in rules.allow):
            raise InvalidInput("the snapshot requires DP; every allowed query must require it")
        if rules.dp is None or rules.dp.epsilon_total != snap.dp.epsilon_total:
            raise InvalidInput("the room policy's DP budget differs from the snapshot's")


class Rooms:
    __slots__ = ("_state",)

    def __init__(self, state: State) -> None:
        self._state = state

    # --- the host -----------------------------------------------------------------------

    def create(
        self, room_env: Envelope, policy_env: Envelope, *, caller: PartyId, now: int
    ) -> Stored[RoomView]:
        signed = room_env.open(Room)
        room = signed.statement
        if room.host != caller:
            raise SignatureInvalid("a room must be created by its host")
        policy = policy_env.open(Policy).statement
        if policy.owner != caller:
            raise SignatureInvalid("the room policy must be signed by the host")
        if policy_env.digest != room.snapshot.policy:
            raise InvalidInput("the snapshot names another policy than the one sent")
        rules = PolicyRules.parse(policy.rules)
        _check_policy_matches(room, rules)
        for query in room.snapshot.allowed_queries:
            try:
                if protocol_query(query) is not None:
                    continue
                self._state.registry.resolve(query)
            except (InvalidInput, NotFound) as exc:
                raise InvalidInput(
                    f"allowed query {query.id} {query.version}: {exc.detail}; this coordinator "
                    "cannot run it"
                ) from None
        if room.snapshot.expires_at <= now:
            raise InvalidInput("the room has already expired")
        with write_transaction(self._state.engine) as conn:
            if conn.execute(select(rooms.c.room).where(rooms.c.room == room_env.digest)).first():
                return Stored(self._view(conn, room_env.digest, now), created=False)
            if conn.execute(
                select(rooms.c.room).where(rooms.c.policy == policy_env.digest)
            ).first():
                raise Conflict("this policy already belongs to another room")
            _, policy_created = self._state.store(conn, policy_env, now=now)
            if policy_created:
                conn.execute(policies.insert().values(policy=policy_env.digest, owner=caller))
            self._state.store(conn, room_env, now=now)
            snap = room.snapshot
            conn.execute(
                rooms.insert().values(
                    room=room_env.digest,
                    host=caller,
                    name=snap.name,
                    template=snap.template.id,
                    policy=policy_env.digest,
                    snapshot_digest=room.snapshot_digest,
                    risky=snap.template.risky,
                    approvers_required=snap.approvers_required,
                    region=snap.region,
                    max_parties=snap.max_parties,
                    expires_at=snap.expires_at,
                    created_at=now,
                )
            )
            conn.execute(
                room_members.insert().values(
                    room=room_env.digest,
                    party=caller,
                    role="host",
                    status="joined",
                    joined_at=now,
                    consent_state="none",
                    invited_at=now,
                )
            )
            room_event(
                conn,
                room_env.digest,
                "created",
                f"room {snap.name!r} from template {snap.template.id}, "
                f"policy snapshot {room.snapshot_digest}",
                now,
                party=caller,
            )
            for reason in snap.template.risk_reasons:
                room_event(conn, room_env.digest, "red-flag", f"risky room: {reason}", now)
            return Stored(self._view(conn, room_env.digest, now), created=True)

    def invite(self, room: str, env: Envelope, *, caller: PartyId, now: int) -> Stored[RoomView]:
        inv = env.open(RoomInvitation).statement
        if inv.host != caller:
            raise SignatureInvalid("an invitation must be sent by the host who signed it")
        if inv.room != room:
            raise InvalidInput("the invitation names another room")
        with write_transaction(self._state.engine) as conn:
            row = _room_row(conn, room, caller)
            if row.host != caller:
                raise PolicyDenied("only the room's host may invite")
            _open(row, now)
            existing = conn.execute(
                select(room_members.c.invitation).where(
                    room_members.c.room == room, room_members.c.party == inv.invitee
                )
            ).first()
            if existing is not None:
                if existing.invitation == env.digest:
                    return Stored(self._view(conn, room, now), created=False)
                raise Conflict(f"party {inv.invitee} is already invited to this room")
            invitee = select(parties.c.party).where(parties.c.party == inv.invitee)
            if conn.execute(invitee).first() is None:
                raise NotFound(f"no party {inv.invitee} is registered")
            count = conn.execute(
                select(func.count()).select_from(room_members).where(room_members.c.room == room)
            ).scalar_one()
            if count >= row.max_parties:
                raise Conflict(f"the room is full ({row.max_parties} parties)")
            self._state.store(conn, env, now=now)
            conn.execute(
                room_members.insert().values(
                    room=room,
                    party=inv.invitee,
                    role="member",
                    invitation=env.digest,
                    status="invited",
                    consent_state="none",
                    invited_at=now,
                )
            )
            room_event(conn, room, "invited", f"invited {inv.invitee}", now, party=inv.invitee)
            return Stored(self._view(conn, room, now), created=True)

    # --- members ------------------------------------------------------------------------

    def join(self, room: str, precheck: dict[str, Any], *, caller: PartyId, now: int) -> RoomView:
        """Record an invitee's own pre-check and make it a member (it consents separately)."""
        with write_transaction(self._state.engine) as conn:
            row = _room_row(conn, room, caller)  # first: a non-member learns nothing more
            entities = precheck.get("entities")
            if isinstance(entities, bool) or not isinstance(entities, int) or entities < 0:
                raise InvalidInput("precheck.entities must be a non-negative integer")
            if precheck.get("ok") is not True:
                raise InvalidInput(
                    "the pre-check did not pass on the member's side (precheck.ok is not "
                    "true); fix the source before joining"
                )
            text = canonical_json(precheck).decode()
            _open(row, now)
            member = conn.execute(
                select(room_members).where(
                    room_members.c.room == room, room_members.c.party == caller
                )
            ).one()
            if member.role == "host":
                raise Conflict("the host is a member of its room already")
            k = int(json.loads(_snapshot(conn, room))["k"])
            if entities < k:
                raise PolicyDenied(
                    f"the pre-check counts {entities} entities, fewer than the room's k ({k})"
                )
            conn.execute(
                update(room_members)
                .where(room_members.c.room == room, room_members.c.party == caller)
                .values(status="joined", precheck=text, joined_at=now)
            )
            room_event(conn, room, "joined", f"joined with {entities} entities", now, party=caller)
            if entities < FEW_ENTITIES_FACTOR * k:
                room_event(
                    conn,
                    room,
                    "red-flag",
                    f"participant {caller} has few entities ({entities}, under "
                    f"{FEW_ENTITIES_FACTOR} x k = {FEW_ENTITIES_FACTOR * k})",
                    now,
                    party=caller,
                )
            return self._view(conn, room, now)

    def consent(self, room: str, env: Envelope, *, caller: PartyId, now: int) -> Stored[RoomView]:
        """A member's consent to the snapshot, or its withdrawal (which ends open runs)."""
        c = env.open(RoomConsent).statement
        if c.party != caller:
            raise SignatureInvalid("a consent must be sent by the member who signed it")
        if c.room != room:
            raise InvalidInput("the consent names another room")
        with write_transaction(self._state.engine) as conn:
            row = _room_row(conn, room, caller)
            if c.snapshot != row.snapshot_digest:
                raise InvalidInput(
                    f"the consent names policy snapshot {c.snapshot}; the room's is "
                    f"{row.snapshot_digest}"
                )
            member = conn.execute(
                select(room_members).where(
                    room_members.c.room == room, room_members.c.party == caller
                )
            ).one()
            if member.consent == env.digest:
                return Stored(self._view(conn, room, now), created=False)
            if member.consent_at is not None and c.created_at < int(member.consent_at):
                raise Conflict("a newer consent decision of yours is recorded already")
            if c.decision == "consent":
                _open(row, now)
                if member.status != "joined":
                    raise Conflict("join the room (with your pre-check) before consenting")
            self._state.store(conn, env, now=now)
            state = "consented" if c.decision == "consent" else "withdrawn"
            conn.execute(
                update(room_members)
                .where(room_members.c.room == room, room_members.c.party == caller)
                .values(consent=env.digest, consent_state=state, consent_at=c.created_at)
            )
            if c.decision == "consent":
                room_event(conn, room, "consented", f"consented to {c.snapshot}", now, party=caller)
            else:
                why = f": {c.reason}" if c.reason else ""
                room_event(conn, room, "withdrew", f"withdrew consent{why}", now, party=caller)
                self._stop_open_runs(conn, room, caller, now)
            return Stored(self._view(conn, room, now), created=True)

    def _stop_open_runs(self, conn: Connection, room: str, party: str, now: int) -> None:
        open_runs = conn.execute(
            select(requests.c.request)
            .join(room_runs, room_runs.c.request == requests.c.request)
            .where(room_runs.c.room == room, requests.c.status.in_(_OPEN_RUN))
        ).all()
        for (request,) in open_runs:
            transition(
                conn,
                str(request),
                _OPEN_RUN,
                "withdrawn",
                f"room member {party} withdrew consent before the run started",
                now,
            )
            room_event(
                conn,
                room,
                "run-stopped",
                f"stopped: {party} withdrew consent",
                now,
                party=party,
                request=str(request),
            )

    # --- people of organisations -------------------------------------------------------

    def put_org_member(self, env: Envelope, *, caller: PartyId, now: int) -> OrgMemberView:
        m = env.open(OrgMember).statement
        if m.org != caller:
            raise SignatureInvalid("an organisation's members are named by the organisation")
        with write_transaction(self._state.engine) as conn:
            person = select(parties.c.party).where(parties.c.party == m.member)
            if conn.execute(person).first() is None:
                raise NotFound(f"no party {m.member} is registered (the person registers first)")
            current = conn.execute(
                select(org_members).where(
                    org_members.c.org == m.org, org_members.c.member == m.member
                )
            ).first()
            if current is not None and int(current.updated_at) > m.created_at:
                raise Conflict("a newer statement about this member is recorded already")
            self._state.store(conn, env, now=now)
            values = {
                "role": m.role,
                "active": m.active,
                "statement": env.digest,
                "updated_at": m.created_at,
            }
            if current is None:
                conn.execute(org_members.insert().values(org=m.org, member=m.member, **values))
            else:
                conn.execute(
                    update(org_members)
                    .where(org_members.c.org == m.org, org_members.c.member == m.member)
                    .values(**values)
                )
        return OrgMemberView(
            org=m.org, member=m.member, role=m.role, active=m.active, statement=env.digest
        )

    def approve_run(
        self, room: str, request: str, env: Envelope, *, caller: PartyId, now: int
    ) -> RoomView:
        """One person of a member organisation approves a run (risky rooms need two)."""
        a = env.open(RunApproval).statement
        if a.approver != caller:
            raise SignatureInvalid("a run approval must be sent by the person who signed it")
        if a.room != room or a.request != request:
            raise InvalidInput("the approval names another room or run")
        with write_transaction(self._state.engine) as conn:
            membership = conn.execute(
                select(org_members).where(
                    org_members.c.org == a.org, org_members.c.member == caller
                )
            ).first()
            if membership is None or not membership.active:
                raise PolicyDenied(f"you are not an active member of organisation {a.org}")
            if membership.role not in _APPROVER_ROLES:
                raise PolicyDenied(
                    f"your role in {a.org} is {membership.role}; only an approver or admin "
                    "may approve runs"
                )
            member = conn.execute(
                select(room_members.c.party).where(
                    room_members.c.room == room, room_members.c.party == a.org
                )
            ).first()
            run = conn.execute(
                select(room_runs.c.room).where(room_runs.c.request == request)
            ).first()
            if member is None or run is None or run.room != room:
                raise NotFound(f"no run {request} in room {room}")
            if conn.execute(
                select(run_approvals.c.statement).where(
                    run_approvals.c.request == request, run_approvals.c.approver == caller
                )
            ).first():
                raise Conflict("you already decided on this run")
            self._state.store(conn, env, now=now)
            conn.execute(
                run_approvals.insert().values(
                    request=request,
                    approver=caller,
                    org=a.org,
                    decision=a.decision,
                    statement=env.digest,
                    at=now,
                )
            )
            room_event(
                conn,
                room,
                "approved" if a.decision == "approve" else "rejected",
                f"{caller} ({membership.role} of {a.org}) {a.decision}d the run",
                now,
                party=caller,
                request=request,
            )
            if a.decision == "reject":
                transition(
                    conn,
                    request,
                    _OPEN_RUN,
                    "rejected",
                    f"{caller} ({membership.role} of {a.org}) rejected the run",
                    now,
                )
            return self._view(conn, room, now)

    # --- reading ------------------------------------------------------------------------

    def get(self, room: str, *, caller: PartyId, now: int) -> RoomView:
        self._state.sweep(now=now)
        with read_transaction(self._state.engine) as conn:
            _room_row(conn, room, caller)
            return self._view(conn, room, now)

    def statements(self, room: str, *, caller: PartyId, now: int) -> RoomStatements:
        """The room's signed statements, each with its inclusion proof in one checkpoint (what
        an auditor pack carries); for the room's host and invited parties (others: not found).
        Protocol runs add their co-signed receipts.

        Consents and invitations are found by the room they name (every one, withdrawals
        too: the history is the audit); approvals by the room's runs."""
        self._state.sweep(now=now)
        with read_transaction(self._state.engine) as conn:
            row = _room_row(conn, room, caller)
            digests: list[str] = [room, str(row.policy)]
            for d, kind, env in conn.execute(
                select(statements.c.digest, statements.c.type, statements.c.envelope)
                .where(statements.c.type.in_((RoomInvitation.TYPE, RoomConsent.TYPE)))
                .order_by(statements.c.log_index)
            ):
                payload = Envelope.from_json(bytes(env)).payload
                named = (
                    RoomInvitation.parse_payload(payload).room
                    if kind == RoomInvitation.TYPE
                    else RoomConsent.parse_payload(payload).room
                )
                if named == room:
                    digests.append(str(d))
            approvals = conn.execute(
                select(run_approvals.c.statement, run_approvals.c.approver, run_approvals.c.org)
                .join(room_runs, room_runs.c.request == run_approvals.c.request)
                .where(room_runs.c.room == room)
            ).all()
            digests += [str(a.statement) for a in approvals]
            for a in approvals:
                digests += [
                    str(m.statement)
                    for m in conn.execute(
                        select(org_members.c.statement).where(
                            org_members.c.org == a.org, org_members.c.member == a.approver
                        )
                    )
                ]
            for request, receipts in conn.execute(
                select(protocol_runs.c.request, protocol_runs.c.receipts)
                .join(room_runs, room_runs.c.request == protocol_runs.c.request)
                .where(room_runs.c.room == room, protocol_runs.c.receipts.is_not(None))
            ):
                # A completed protocol run has no proof bundle: its request, the owners'
                # approvals and the co-signed receipts are the record.
                digests.append(str(request))
                digests += [
                    str(a)
                    for a in conn.scalars(
                        select(request_inputs.c.approval).where(
                            request_inputs.c.request == request,
                            request_inputs.c.approval.is_not(None),
                        )
                    )
                ]
                digests += [str(d) for d in json.loads(receipts)]
            wanted = list(dict.fromkeys(digests))
            rows = conn.execute(
                select(statements.c.envelope, statements.c.log_index, statements.c.log_salt)
                .where(statements.c.digest.in_(wanted))
                .order_by(statements.c.log_index)
            ).all()
            note = latest_checkpoint(conn)
            size = checkpoint_size(note)
            log = log_on(conn)
            logged = tuple(
                LoggedStatement(
                    envelope=Envelope.from_json(bytes(env)),
                    log_index=int(index),
                    salt=bytes(salt) if salt is not None else None,
                    inclusion=tuple(log.inclusion_proof(int(index), size)),
                )
                for env, index, salt in rows
            )
        return RoomStatements(room=room, checkpoint=note, statements=logged)

    def listing(self, *, caller: PartyId, now: int) -> RoomList:
        self._state.sweep(now=now)
        with read_transaction(self._state.engine) as conn:
            ids = conn.execute(
                select(rooms.c.room)
                .join(room_members, room_members.c.room == rooms.c.room)
                .where(room_members.c.party == caller)
                .order_by(rooms.c.created_at.desc(), rooms.c.room)
                .limit(_MAX_LISTED)
            ).all()
            return RoomList(items=tuple(self._view(conn, str(r[0]), now) for r in ids))

    def _view(self, conn: Connection, room: str, now: int) -> RoomView:
        row = conn.execute(select(rooms).where(rooms.c.room == room)).one()
        env, _ = statement(conn, room, Room.TYPE)
        policy_env, _ = statement(conn, row.policy, Policy.TYPE)
        members = conn.execute(
            select(room_members)
            .where(room_members.c.room == room)
            .order_by(room_members.c.invited_at, room_members.c.party)
        ).all()
        runs = conn.execute(
            select(requests.c.request, requests.c.status, requests.c.status_reason)
            .add_columns(requests.c.computation_id)
            .join(room_runs, room_runs.c.request == requests.c.request)
            .where(room_runs.c.room == room)
            .order_by(requests.c.seq)
        ).all()
        approvals: dict[str, list[str]] = {}
        for a in conn.execute(
            select(run_approvals.c.request, run_approvals.c.approver)
            .join(room_runs, room_runs.c.request == run_approvals.c.request)
            .where(room_runs.c.room == room, run_approvals.c.decision == "approve")
            .order_by(run_approvals.c.at)
        ):
            approvals.setdefault(str(a.request), []).append(str(a.approver))
        events = [
            RoomEvent(at=int(e.at), kind=e.kind, party=e.party, request=e.request, detail=e.detail)
            for e in conn.execute(
                select(room_events)
                .where(room_events.c.room == room)
                .order_by(room_events.c.id.desc())
                .limit(_MAX_EVENTS)
            )
        ][::-1]
        return RoomView(
            room=room,
            envelope=env,
            policy=policy_env,
            snapshot=Room.parse_payload(env.payload).snapshot.to_json(),
            snapshot_digest=row.snapshot_digest,
            host=row.host,
            name=row.name,
            template=row.template,
            risky=bool(row.risky),
            region=row.region,
            expires_at=int(row.expires_at),
            expired=int(row.expires_at) <= now,
            members=tuple(
                RoomMember(
                    party=m.party,
                    role=m.role,
                    status=m.status,
                    consent_state=m.consent_state,
                    consent=m.consent,
                    precheck=None if m.precheck is None else json.loads(m.precheck),
                    invited_at=int(m.invited_at),
                    joined_at=None if m.joined_at is None else int(m.joined_at),
                )
                for m in members
            ),
            runs=tuple(
                RoomRun(
                    request=r.request,
                    status=r.status,
                    status_reason=r.status_reason,
                    computation=r.computation_id,
                    approvals=tuple(approvals.get(str(r.request), ())),
                )
                for r in runs
            ),
            events=tuple(events),
            red_flags=tuple(e for e in events if e.kind == "red-flag"),
        )


def _open(row: Row[Any], now: int) -> None:
    if int(row.expires_at) <= now:
        raise RoomClosed(f"the room expired at {int(row.expires_at)} (now {now})")


def room_k(conn: Connection, room: Row[Any]) -> int:
    """The k of ``room`` (a ``rooms`` row), from its signed snapshot."""
    return Room.parse_payload(statement(conn, room.room, Room.TYPE)[0].payload).snapshot.k


def _snapshot(conn: Connection, room: str) -> str:
    env, _ = statement(conn, room, Room.TYPE)
    return json.dumps(Room.parse_payload(env.payload).snapshot.to_json())


# --- hooks the request, approval and upload paths call ---------------------------------------


def room_of_request(conn: Connection, req: ComputationRequest) -> Row[Any] | None:
    """The room whose policy the request names, if any."""
    if req.room_policy is None:
        return None
    return conn.execute(select(rooms).where(rooms.c.policy == req.room_policy)).first()


def check_room_run(
    conn: Connection, room: Row[Any], req: ComputationRequest, *, epsilon: Decimal, now: int
) -> None:
    """Refuse a run the room does not allow (named errors), before anything is stored."""
    _open(room, now)
    snap = Room.parse_payload(statement(conn, room.room, Room.TYPE)[0].payload).snapshot
    if req.requester != room.host:
        raise PolicyDenied("only the room's host starts runs in it")
    if req.computation not in snap.allowed_queries:
        allowed = ", ".join(f"{q.id} {q.version}" for q in snap.allowed_queries)
        raise QueryNotAllowed(
            f"{req.computation.id} {req.computation.version} (code {req.computation.code_digest})"
            f" is not among the room's allowed queries ({allowed})"
        )
    if snap.dp.epsilon_per_run is not None and epsilon > Decimal(snap.dp.epsilon_per_run):
        raise QueryNotAllowed(
            f"the run spends epsilon {epsilon}; the room allows at most "
            f"{snap.dp.epsilon_per_run} per run"
        )
    members = {
        str(m.party): m
        for m in conn.execute(select(room_members).where(room_members.c.room == room.room))
    }
    for ds in req.inputs:
        owner = conn.execute(
            select(datasets.c.owner).where(datasets.c.dataset == ds)
        ).scalar_one_or_none()
        if owner is None:
            raise NotFound(f"input dataset {ds} does not exist")
        m = members.get(str(owner))
        if m is None or m.status != "joined":
            raise ConsentMissing(f"the owner of input {ds} ({owner}) is not a member of the room")
        if str(owner) == str(room.host):
            continue  # the host signed the room itself
        if m.consent_state != "consented":
            raise ConsentMissing(
                f"member {owner} has {'withdrawn' if m.consent_state == 'withdrawn' else 'not given'}"
                f" consent to the room's policy snapshot {room.snapshot_digest}"
            )


def record_room_run(
    conn: Connection, room: Row[Any], request: str, req: ComputationRequest, now: int
) -> None:
    """Tie a stored request to its room, and red-flag a near-identical repeat or a rerun of a
    query on the same member data with other inputs (the request's inputs are stored)."""
    shape = canonical_json(
        {"computation": req.computation.id, "parameters": req.parameters, "inputs": req.inputs}
    ).decode()
    earlier = conn.execute(
        select(func.count())
        .select_from(room_runs)
        .where(room_runs.c.room == room.room, room_runs.c.shape == shape)
    ).scalar_one()
    conn.execute(room_runs.insert().values(request=request, room=room.room, shape=shape))
    room_event(
        conn,
        room.room,
        "run",
        f"run of {req.computation.id} started by the host",
        now,
        party=req.requester,
        request=request,
    )
    if earlier:
        room_event(
            conn,
            room.room,
            "red-flag",
            f"repeated near-identical run: the same query on the same inputs ran {earlier} "
            "time(s) before (differencing risk)",
            now,
            request=request,
        )
        return
    members = select(request_inputs.c.dataset).where(
        request_inputs.c.request == request, request_inputs.c.owner != room.host
    )
    reused = conn.execute(
        select(func.count(func.distinct(request_inputs.c.request)))
        .join(room_runs, room_runs.c.request == request_inputs.c.request)
        .join(requests, requests.c.request == request_inputs.c.request)
        .where(
            room_runs.c.room == room.room,
            request_inputs.c.request != request,
            request_inputs.c.dataset.in_(members),
            requests.c.computation_id == req.computation.id,
        )
    ).scalar_one()
    if reused:
        room_event(
            conn,
            room.room,
            "red-flag",
            f"{req.computation.id} ran on the same member data {reused} time(s) before with other "
            "inputs: a host that changes its own input between runs can difference them or test "
            "whether one person is in a member's data",
            now,
            request=request,
        )


def check_dual_approval(conn: Connection, request: str, owner: str, now: int) -> None:
    """A risky room's run needs two distinct approvers of ``owner`` before it approves."""
    run = conn.execute(
        select(rooms.c.room, rooms.c.approvers_required)
        .join(room_runs, room_runs.c.room == rooms.c.room)
        .where(room_runs.c.request == request)
    ).first()
    if run is None or int(run.approvers_required) < 2:
        return
    people = {
        str(r.approver)
        for r in conn.execute(
            select(run_approvals.c.approver)
            .join(
                org_members,
                (org_members.c.member == run_approvals.c.approver)
                & (org_members.c.org == run_approvals.c.org),
            )
            .where(
                run_approvals.c.request == request,
                run_approvals.c.org == owner,
                run_approvals.c.decision == "approve",
                org_members.c.active.is_(True),
                org_members.c.role.in_(_APPROVER_ROLES),
            )
        )
    }
    if len(people) < int(run.approvers_required):
        raise DualApprovalRequired(
            f"the room's template is risky: {owner}'s approval needs "
            f"{int(run.approvers_required)} distinct approvers of {owner} "
            f"(each a person with its own key), and {len(people)} approved"
        )


def check_region(conn: Connection, request: str, evidence: Envelope) -> None:
    """A region-pinned room's inputs may only be sealed to an enclave declaring that region."""
    region = conn.execute(
        select(rooms.c.region)
        .join(room_runs, room_runs.c.room == rooms.c.room)
        .where(room_runs.c.request == request)
    ).scalar_one_or_none()
    if region is None:
        return
    declared = evidence.open(EnclaveEvidence).statement.keys.region
    if declared != region:
        raise RegionMismatch(
            f"the room is pinned to region {region!r}; the enclave declares "
            f"{declared or 'no region'}"
        )


@dataclass(frozen=True, slots=True)
class RoomMaterials:
    """What the enclave checks a room run against (see :mod:`sealroom.enclave.runner`)."""

    room: Envelope | None = None
    consents: tuple[Envelope, ...] = ()
    run_approvals: tuple[Envelope, ...] = ()
    org_members: tuple[Envelope, ...] = ()


def room_materials(conn: Connection, policy: str | None, request: str) -> RoomMaterials:
    """For a job under a room's policy: the room, its members' current consents, and the
    people's approvals of this run with the statements naming them."""
    if policy is None:
        return RoomMaterials()
    row = conn.execute(select(rooms.c.room).where(rooms.c.policy == policy)).first()
    if row is None:
        return RoomMaterials()
    room_env, _ = statement(conn, row.room, Room.TYPE)
    digests = [
        str(r.consent)
        for r in conn.execute(
            select(room_members.c.consent).where(
                room_members.c.room == row.room,
                room_members.c.consent_state == "consented",
            )
        )
    ]
    approvals = conn.execute(
        select(run_approvals.c.statement, run_approvals.c.approver, run_approvals.c.org).where(
            run_approvals.c.request == request, run_approvals.c.decision == "approve"
        )
    ).all()
    people = [
        str(m.statement)
        for a in approvals
        for m in conn.execute(
            select(org_members.c.statement).where(
                org_members.c.org == a.org, org_members.c.member == a.approver
            )
        )
    ]
    return RoomMaterials(
        room=room_env,
        consents=tuple(statement(conn, d, RoomConsent.TYPE)[0] for d in sorted(digests)),
        run_approvals=tuple(
            statement(conn, str(a.statement), RunApproval.TYPE)[0] for a in approvals
        ),
        org_members=tuple(statement(conn, d, OrgMember.TYPE)[0] for d in sorted(set(people))),
    )
