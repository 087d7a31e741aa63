"""Afterwards, from a party's side: a request's deletions with checked proofs, and issuing an
auditor's disclosure pack (:mod:`sealroom.audit.pack`) from what the coordinator serves.

Nothing the coordinator serves is taken on its word: every deletion is opened (signature, the
enclave as signer) and its inclusion proof checked under the log key before it is returned or
packed; bundles are packed as served and verified by whoever verifies the pack.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sealroom.audit.pack import AuditPack, LoggedStatementProof, verify_logged_statement, write_pack
from sealroom.client.http import Client
from sealroom.crypto.keys import Identity
from sealroom.errors import VerificationFailed
from sealroom.statements import Deletion, Digest
from sealroom.verification.bundle import LogEntryProof, LogProof
from sealroom.verification.trust import trust_policy
from sealroom.wire import DeletionsView

__all__ = ["deletion_proofs", "issue_pack", "logged_statements"]


def logged_statements(view: DeletionsView, verifier_key: str) -> list[LoggedStatementProof]:
    """The view's deletions as logged-statement proofs against its checkpoint (unchecked)."""
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
        for d in view.deletions
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
