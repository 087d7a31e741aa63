"""Afterwards, from a party's side: a request's deletions with checked proofs, a room's one-page
summary, and issuing an auditor's disclosure pack (:mod:`sealroom.audit.pack`), of requests or
of a whole room, from what the coordinator serves.

Nothing the coordinator serves is taken on its word: every deletion is opened (signature, the
enclave as signer) and its inclusion proof checked under the log key before it is returned or
packed; bundles are packed as served and verified by whoever verifies the pack.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sealroom.audit.pack import AuditPack, LoggedStatementProof, verify_logged_statement, write_pack
from sealroom.client.http import Client
from sealroom.crypto.keys import Identity
from sealroom.errors import VerificationFailed
from sealroom.protocols.queries import is_protocol
from sealroom.statements import (
    Approval,
    ComputationRequest,
    Deletion,
    Digest,
    OrgMember,
    Policy,
    ProtocolReceipt,
    Room,
    RoomConsent,
    RoomInvitation,
    RunApproval,
    canonical_json,
    policy_snapshot,
)
from sealroom.verification.bundle import LogEntryProof, LogProof
from sealroom.verification.trust import trust_policy
from sealroom.wire import DeletionsView, LoggedStatement, RoomStatements

if TYPE_CHECKING:
    from sealroom.audit.summary import PolicySummary

__all__ = [
    "deletion_proofs",
    "issue_pack",
    "issue_room_pack",
    "logged_statements",
    "room_statement_proofs",
    "room_summary",
]


def logged_statements(
    view: DeletionsView | RoomStatements, verifier_key: str
) -> list[LoggedStatementProof]:
    """The view's statements as logged-statement proofs against its checkpoint (unchecked)."""
    items: Sequence[LoggedStatement] = (
        view.deletions if isinstance(view, DeletionsView) else view.statements
    )
    return [
        LoggedStatementProof(
            envelope=d.envelope,
            log=LogProof(
                verifier_key=verifier_key,
                checkpoint=view.checkpoint,
                entries=(
                    LogEntryProof(
                        digest=Digest(d.envelope.digest),
                        index=d.log_index,
                        proof=tuple(d.inclusion),
                        salt=d.salt,
                    ),
                ),
            ),
        )
        for d in items
    ]


def deletion_proofs(
    client: Client, request: str, *, log_key: str | None = None
) -> tuple[DeletionsView, list[LoggedStatementProof]]:
    """The request's deletions view and its Deletions as proofs, each checked: a Deletion
    signed by its enclave, for this request, included in the log under ``log_key`` (default:
    the key the coordinator serves, which pins nothing)."""
    key = log_key or client.log_key().verifier_key
    view = client.deletions(request)
    proofs = logged_statements(view, key)
    trust = trust_policy(log_key=key)
    for proof in proofs:
        verify_logged_statement(proof, trust)
        if Deletion.parse_payload(proof.envelope.payload).request != request:
            raise VerificationFailed(f"deletion {proof.envelope.digest} is for another request")
    return view, proofs


def issue_pack(
    client: Client,
    issuer: Identity,
    out: Path,
    *,
    now: int,
    valid_for: int,
    requests: Sequence[str] = (),
    statements: Sequence[LoggedStatementProof] = (),
    snapshot: bytes | None = None,
    audience: str | None = None,
    purpose: str = "audit disclosure",
    log_key: str | None = None,
) -> AuditPack:
    """Write a pack signed by ``issuer`` to ``out``: each request's proof bundle and checked
    deletions, then ``statements`` (consents, approvals, ...) and the snapshot."""
    key = log_key or client.log_key().verifier_key
    bundles, logged = [], []
    for rid in requests:
        bundles.append(client.bundle(rid))
        logged += deletion_proofs(client, rid, log_key=key)[1]
    return write_pack(
        out,
        issuer=issuer,
        purpose=purpose,
        not_after=now + valid_for,
        now=now,
        bundles=bundles,
        statements=[*logged, *statements],
        snapshot=snapshot,
        audience=audience,
    )


def room_statement_proofs(
    client: Client, room: str, *, log_key: str | None = None
) -> list[LoggedStatementProof]:
    """The room's signed statements with proofs, each checked (signature, signer, inclusion
    in the log under ``log_key``) and each about this room: the coordinator cannot slip in
    another room's consent or a forged one."""
    from sealroom.client.rooms import fetch_room

    key = log_key or client.log_key().verifier_key
    verified = fetch_room(client, room)
    view = client.room_statements(room)
    if view.room != room:
        raise VerificationFailed(
            f"the coordinator served the statements of another room for {room}"
        )
    runs = {r.request for r in verified.view.runs}
    proofs = logged_statements(view, key)
    trust = trust_policy(log_key=key)
    for proof in proofs:
        verify_logged_statement(proof, trust)
        env = proof.envelope
        if env.type == Room.TYPE:
            ours = env.digest == room
        elif env.type == Policy.TYPE:
            ours = env.digest == verified.policy.digest
        elif env.type == RoomInvitation.TYPE:
            ours = RoomInvitation.parse_payload(env.payload).room == room
        elif env.type == RoomConsent.TYPE:
            ours = RoomConsent.parse_payload(env.payload).room == room
        elif env.type == RunApproval.TYPE:
            approval = RunApproval.parse_payload(env.payload)
            ours = approval.room == room and approval.request in runs
        elif env.type == ComputationRequest.TYPE:  # a protocol run's record
            req = ComputationRequest.parse_payload(env.payload)
            ours = env.digest in runs and req.room_policy == verified.policy.digest
        elif env.type == Approval.TYPE:
            ours = Approval.parse_payload(env.payload).request in runs
        elif env.type == ProtocolReceipt.TYPE:
            ours = ProtocolReceipt.parse_payload(env.payload).request in runs
        else:
            ours = env.type == OrgMember.TYPE
        if not ours:
            raise VerificationFailed(
                f"statement {env.digest} ({env.type}) is not about room {room}"
            )
    if not any(p.envelope.digest == room for p in proofs):
        raise VerificationFailed(f"the coordinator's statements of room {room} omit the room")
    return proofs


def room_summary(client: Client, room: str) -> PolicySummary:
    """The room's one-page summary, from its signed snapshot (checked here, never the
    coordinator's word), with the parties' registered names beside their fingerprints."""
    from sealroom.audit.summary import room_summary as summarise
    from sealroom.client.rooms import fetch_room

    verified = fetch_room(client, room)
    # Self-chosen registered names: display hints beside each fingerprint, not in the digest.
    names = {m.party: client.party(m.party).name for m in verified.view.members}
    return summarise(verified.room.statement, room_id=room, names=names)


def issue_room_pack(
    client: Client,
    issuer: Identity,
    room: str,
    out: Path,
    *,
    now: int,
    valid_for: int,
    audience: str | None = None,
    purpose: str = "room audit disclosure",
    log_key: str | None = None,
) -> AuditPack:
    """A pack of a whole room: its snapshot, every completed enclave run's bundle and
    deletions, and the room's statements (room, policy, invitations, consents and
    withdrawals, approvals; for protocol runs, the request, its approvals and receipts)."""
    from sealroom.client.rooms import fetch_room

    key = log_key or client.log_key().verifier_key
    verified = fetch_room(client, room)
    snapshot, _ = policy_snapshot(verified.room.statement)
    # Enclave runs come as proof bundles; a protocol run's request, approvals and co-signed
    # receipts are among the room's statements.
    runs = [
        r.request
        for r in verified.view.runs
        if r.status == "completed" and not is_protocol(r.computation)
    ]
    return issue_pack(
        client,
        issuer,
        out,
        now=now,
        valid_for=valid_for,
        requests=runs,
        statements=room_statement_proofs(client, room, log_key=key),
        snapshot=canonical_json(snapshot),
        audience=audience,
        purpose=purpose,
        log_key=key,
    )
