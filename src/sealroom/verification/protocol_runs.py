"""Offline verification of a no-trust protocol run's co-signed receipts.

A run is verified as the set of its participants' :class:`~sealroom.statements.ProtocolReceipt`
statements (the parties exchange them at the end of a run, :mod:`sealroom.protocols.receipts`;
the coordinator checks them before logging, and an auditor pack's verifier again).
"""

from __future__ import annotations

from collections.abc import Sequence

from sealroom.errors import VerificationFailed
from sealroom.statements import Envelope, ProtocolReceipt, Signed, canonical_json

__all__ = ["verify_run"]


def verify_run(
    envelopes: Sequence[Envelope], *, require_all: bool = True
) -> tuple[Signed[ProtocolReceipt], ...]:
    """Verify a co-signed run record; raise :class:`VerificationFailed` on any problem.

    Checks each signature and signer, that all receipts describe the same run
    (protocol, version, session, request, code digest, parameters,
    participants), that no role signed twice, that (with ``require_all``)
    every participant signed, and that for each message stream the sender's
    and the recipient's digests agree.
    """
    if not envelopes:
        raise VerificationFailed("a run record needs at least one receipt")
    opened = [e.open(ProtocolReceipt) for e in envelopes]
    first = opened[0].statement
    description = _description(first)
    by_role: dict[str, ProtocolReceipt] = {}
    for signed in opened:
        r = signed.statement
        if _description(r) != description:
            raise VerificationFailed(f"the receipt of {r.role} describes a different run")
        if r.role in by_role:
            raise VerificationFailed(f"two receipts for role {r.role}")
        by_role[r.role] = r
    missing = [p.role for p in first.participants if p.role not in by_role]
    if missing and require_all:
        raise VerificationFailed(f"no receipt from {', '.join(missing)}")
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for r in by_role.values():
        for s in r.transcript:
            key = (s.sender, s.recipient)
            if key in seen and seen[key][0] != s.digest:
                raise VerificationFailed(
                    f"{r.role} and {seen[key][1]} disagree about the messages "
                    f"from {s.sender} to {s.recipient}"
                )
            seen.setdefault(key, (s.digest, r.role))
    return tuple(opened)


def _description(r: ProtocolReceipt) -> bytes:
    return canonical_json(
        r.model_dump(
            mode="json",
            include={
                "protocol",
                "protocol_version",
                "session",
                "request",
                "code_digest",
                "parameters",
                "participants",
            },
        )
    )
