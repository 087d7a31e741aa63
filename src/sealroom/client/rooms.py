"""A party's side of rooms: create one from a template, invite, pre-check and join, consent
or withdraw, start runs, approve them as a person of an organisation.

The coordinator is not trusted: every room this module acts on is re-opened from
its signed envelope (:func:`open_room`): the host's signature, the snapshot's
digest recomputed, and the room policy being exactly the one the snapshot names.
A consent is signed only over a snapshot digest recomputed here, so a member
consents to what it read, whatever the coordinator says.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.client.local import record_consent
from sealroom.computations import Registry, default_registry
from sealroom.computations.templates import RoomSettings, draft_room
from sealroom.crypto.keys import Identity, b64encode
from sealroom.errors import InvalidInput, QueryNotAllowed, RoomClosed, VerificationFailed
from sealroom.policy.rules import PolicyRules
from sealroom.protocols.queries import protocol_ref
from sealroom.statements import (
    OrgMember,
    Policy,
    Room,
    RoomConsent,
    RoomInvitation,
    RunApproval,
    Signed,
    sign_statement,
)
from sealroom.wire import OrgMemberView, RequestView, RoomView

if TYPE_CHECKING:
    from sealroom.connectors.sources import Source

__all__ = [
    "PRECHECK_FORMAT",
    "VerifiedRoom",
    "add_org_member",
    "approve_run",
    "consent",
    "create_room",
    "invite",
    "join",
    "open_room",
    "precheck",
    "run",
]

PRECHECK_FORMAT = "sealroom.room-precheck/v1"


@dataclass(frozen=True, slots=True)
class VerifiedRoom:
    """A room whose envelope, snapshot digest and policy were checked here."""

    room: Signed[Room]
    policy: Signed[Policy]
    view: RoomView

    @property
    def digest(self) -> str:
        return self.room.digest

    @property
    def rules(self) -> PolicyRules:
        return PolicyRules.parse(self.policy.statement.rules)


def open_room(view: RoomView, expected: str | None = None) -> VerifiedRoom:
    """Check a room view against its signed statements (never trust the coordinator's fields)."""
    room = view.envelope.open(Room)
    if room.digest != view.room or (expected is not None and room.digest != expected):
        raise VerificationFailed(f"the coordinator served another room for {expected or view.room}")
    snapshot = room.statement.snapshot
    if snapshot.digest() != view.snapshot_digest:
        raise VerificationFailed("the coordinator's snapshot digest is not the room's")
    policy = view.policy.open(Policy)
    if policy.digest != snapshot.policy or policy.statement.owner != room.statement.host:
        raise VerificationFailed("the room's policy is not the one its snapshot names")
    return VerifiedRoom(room=room, policy=policy, view=view)


def fetch_room(client: Client, room: str) -> VerifiedRoom:
    return open_room(client.room(room), room)


def create_room(
    client: Client,
    identity: Identity,
    settings: RoomSettings,
    *,
    now: int,
    registry: Registry | None = None,
) -> VerifiedRoom:
    """Sign the room's policy and the room (with its snapshot), and create it."""
    rules, make_snapshot = draft_room(
        settings,
        host=identity.party_id,
        registry=registry or default_registry(),
        now=now,
        protocol_ref=protocol_ref,
    )
    policy = sign_statement(
        Policy.build(
            owner=identity.party_id,
            # Policies are public: the name says only what it is (the room is members-only);
            # its random tag keeps two rooms with the same terms from sharing one policy.
            name=f"room policy {os.urandom(8).hex()}",
            rules=rules,
            created_at=now,
        ),
        identity,
    )
    snapshot = make_snapshot(policy.digest)
    room = sign_statement(
        Room.build(
            host=identity.party_id,
            snapshot=snapshot,
            snapshot_digest=snapshot.digest(),
            nonce=b64encode(os.urandom(16)),
            created_at=now,
        ),
        identity,
    )
    return open_room(client.create_room(room.envelope, policy.envelope), room.digest)


def invite(client: Client, identity: Identity, room: str, party: str, *, now: int) -> RoomView:
    """The host invites ``party`` (a party id) into ``room``."""
    invitation = sign_statement(
        RoomInvitation.build(room=room, host=identity.party_id, invitee=party, created_at=now),
        identity,
    )
    return client.invite(room, invitation.envelope)


def precheck(
    client: Client,
    room: VerifiedRoom,
    dataset: str,
    *,
    home: Path,
    key_column: str = "id",
    columns: Mapping[str, Literal["any", "numeric"]] | None = None,
    data: Path | Source | None = None,
) -> dict[str, Any]:
    """The member's local pre-check of its dataset for ``room`` (nothing leaves the machine
    but the report, which the member reads before it joins).

    It reads the data it would seal (checked against the published commitment), and
    reports: the schema and column types (``columns``: required columns and kinds),
    the number of distinct entities in ``key_column`` against the room's k, and the
    card the data would reveal under the room's k (keywords, topics, row count).
    """
    import pyarrow as pa

    from sealroom.connectors.profile import profile_table

    att, table = flows.load_dataset(client, dataset, data_path=data, home=home)
    k = room.room.statement.snapshot.k
    problems: list[str] = []
    schema = [[f.name, str(f.type)] for f in table.schema]
    wanted = dict(columns or {})
    wanted.setdefault(key_column, "any")
    for name, kind in sorted(wanted.items()):
        if name not in table.column_names:
            problems.append(f"column {name!r} is missing")
            continue
        t = table.schema.field(name).type
        if kind == "numeric" and not (pa.types.is_integer(t) or pa.types.is_floating(t)):
            problems.append(f"column {name!r} is {t}, not numeric")
    entities = 0
    if key_column in table.column_names:
        entities = int(pa.compute.count_distinct(table.column(key_column)).as_py())
    if entities < k:
        problems.append(f"{entities} distinct entities in {key_column!r}, fewer than k = {k}")
    card = profile_table(table, k=k, entity_column=key_column if not problems else None)
    report: dict[str, Any] = {
        "format": PRECHECK_FORMAT,
        "room": room.digest,
        "snapshot": room.room.statement.snapshot_digest,
        "dataset": att.digest,
        "rows": table.num_rows,
        "schema": schema,
        "key_column": key_column,
        "entities": entities,
        "k": k,
        "enough_for_k": entities >= k,
        "card": {
            "title": att.statement.title,
            "row_count": card.row_count,
            "keywords": len(card.keywords),
            "topics": list(card.topics),
        },
        "problems": problems,
        "ok": not problems,
    }
    return report


def join(client: Client, room: VerifiedRoom, report: Mapping[str, Any]) -> VerifiedRoom:
    """Join ``room`` with a passing pre-check ``report`` (see :func:`precheck`)."""
    if report.get("ok") is not True:
        raise InvalidInput(
            "the pre-check did not pass: " + "; ".join(str(p) for p in report.get("problems", []))
        )
    if report.get("room") != room.digest:
        raise InvalidInput("the pre-check report is for another room")
    return open_room(client.join_room(room.digest, report), room.digest)


def consent(
    client: Client,
    identity: Identity,
    room: str,
    *,
    decision: Literal["consent", "withdraw"] = "consent",
    reason: str = "",
    now: int,
    home: Path | None = None,
) -> VerifiedRoom:
    """Consent to the room's snapshot as verified here, or withdraw (stops open runs)."""
    verified = fetch_room(client, room)
    snapshot = verified.room.statement.snapshot
    if decision == "consent" and snapshot.expires_at <= now:
        raise RoomClosed(f"the room expired at {snapshot.expires_at}")
    signed = sign_statement(
        RoomConsent.build(
            room=room,
            party=identity.party_id,
            snapshot=snapshot.digest(),
            decision=decision,
            reason=reason,
            created_at=now,
        ),
        identity,
    )
    if home is not None and decision == "withdraw":
        # Recorded before it is sent: from now on this client seals nothing for the room.
        _remember(home, verified, decision, now)
    out = open_room(client.post_consent(room, signed.envelope), room)
    if home is not None and decision == "consent":
        _remember(home, verified, decision, now)
    return out


def _remember(home: Path, room: VerifiedRoom, decision: str, now: int) -> None:
    snapshot = room.room.statement.snapshot
    record_consent(
        home,
        room=room.digest,
        policy=snapshot.policy,
        snapshot=snapshot.digest(),
        decision=decision,
        at=now,
    )


def run(
    client: Client,
    identity: Identity,
    room: str,
    computation: str,
    datasets: Sequence[str],
    params: Mapping[str, Any],
    *,
    now: int,
    home: Path,
    registry: Registry | None = None,
    ttl: int = flows.DEFAULT_TTL,
) -> RequestView:
    """The host starts a run: a request under the room's policy (refused here first when it
    is not among the room's allowed queries)."""
    verified = fetch_room(client, room)
    snapshot = verified.room.statement.snapshot
    registry = registry or default_registry()
    ref = registry.get(computation).ref()
    if ref not in snapshot.allowed_queries:
        allowed = ", ".join(f"{q.id} {q.version}" for q in snapshot.allowed_queries)
        raise QueryNotAllowed(f"{computation} is not among the room's allowed queries ({allowed})")
    return flows.request(
        client,
        identity,
        computation,
        datasets,
        dict(params),
        now=now,
        ttl=min(ttl, max(1, snapshot.expires_at - now)),
        registry=registry,
        room_policy=snapshot.policy,
        home=home,
    )


def approve_run(
    client: Client,
    identity: Identity,
    room: str,
    request: str,
    *,
    org: str,
    decision: Literal["approve", "reject"] = "approve",
    reason: str = "",
    now: int,
) -> RoomView:
    """This person (a member of ``org``) approves or rejects one run in ``room``."""
    signed = sign_statement(
        RunApproval.build(
            room=room,
            request=request,
            org=org,
            approver=identity.party_id,
            decision=decision,
            reason=reason,
            created_at=now,
        ),
        identity,
    )
    return client.approve_run(room, request, signed.envelope)


def add_org_member(
    client: Client,
    identity: Identity,
    member: str,
    role: Literal["admin", "approver", "analyst", "auditor"],
    *,
    active: bool = True,
    now: int,
) -> OrgMemberView:
    """The organisation (this identity) names ``member`` with ``role`` (or removes it)."""
    signed = sign_statement(
        OrgMember.build(
            org=identity.party_id, member=member, role=role, active=active, created_at=now
        ),
        identity,
    )
    return client.put_org_member(signed.envelope)
