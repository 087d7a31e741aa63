"""Whether a room admits one run, from the room's signed statements alone.

The enclave checks this before an enclave run, and every participant's client before a
protocol run, so neither has to believe the coordinator: a room's policy runs only with
the room that names it; every input owner but the host consents (its newest signed
decision on the room's exact snapshot is a consent); and in a risky room each such owner
has its required number of distinct people, named by the owner's own signed OrgMember
statements as an active approver or admin, who signed a RunApproval of this run.

What this cannot see is a statement it is not given: a coordinator that withholds a
later withdrawal can only be caught by someone holding the log (docs/rooms.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from sealroom.errors import ConsentMissing, DualApprovalRequired, RoomClosed
from sealroom.statements import (
    Envelope,
    OrgMember,
    Policy,
    Room,
    RoomConsent,
    RunApproval,
    Signed,
)

__all__ = ["check_room_admits"]


def check_room_admits(
    room_env: Envelope | None,
    policy: Signed[Policy],
    *,
    owners: Iterable[str],
    consents: Iterable[Envelope],
    org_members: Iterable[Envelope],
    run_approvals: Iterable[Envelope],
    request: str,
    now: int,
) -> Signed[Room]:
    """The room, if it admits the run ``request`` on inputs of ``owners`` (raises otherwise:
    :class:`ConsentMissing`, :class:`RoomClosed`, :class:`DualApprovalRequired`)."""
    if room_env is None:
        raise ConsentMissing("the room policy requires its room statement; none was given")
    signed = room_env.open(Room)
    room = signed.statement
    if room.snapshot.policy != policy.digest or room.host != policy.statement.owner:
        raise ConsentMissing("the room given is not the room of this policy")
    if room.snapshot.expires_at <= now:
        raise RoomClosed(f"the room expired at {room.snapshot.expires_at}")
    newest: dict[str, RoomConsent] = {}
    for env in consents:
        c = env.open(RoomConsent).statement
        if c.room != room_env.digest or c.snapshot != room.snapshot_digest or c.created_at > now:
            continue
        if c.party not in newest or newest[c.party].created_at <= c.created_at:
            newest[c.party] = c
    members = set(owners) - {room.host}
    for owner in sorted(members):
        decision = newest.get(owner)
        if decision is None or decision.decision != "consent":
            raise ConsentMissing(
                f"no consent of input owner {owner} to the room's snapshot {room.snapshot_digest}"
                + (" (it withdrew)" if decision is not None else "")
            )
    needed = room.snapshot.approvers_required
    if needed < 2:
        return signed
    roles: dict[tuple[str, str], OrgMember] = {}
    for env in org_members:
        m = env.open(OrgMember).statement
        key = (m.org, m.member)
        if key not in roles or roles[key].created_at < m.created_at:
            roles[key] = m
    people: dict[str, set[str]] = {}
    for env in run_approvals:
        a = env.open(RunApproval).statement
        named = roles.get((a.org, a.approver))
        if (
            a.room == room_env.digest
            and a.request == request
            and a.decision == "approve"
            and named is not None
            and named.active
            and named.role in ("approver", "admin")
        ):
            people.setdefault(a.org, set()).add(a.approver)
    for owner in sorted(members):
        if len(people.get(owner, ())) < needed:
            raise DualApprovalRequired(
                f"the room is risky: input owner {owner} needs {needed} distinct approvers, "
                f"and {len(people.get(owner, ()))} signed"
            )
    return signed
