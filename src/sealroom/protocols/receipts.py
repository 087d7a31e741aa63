"""Signed receipts for protocol runs, exchanged at the end of a run and verified as a set.

A run ends with every participant signing a
:class:`~sealroom.statements.ProtocolReceipt` (same run description, its own
stream digests, a salted commitment to what it learned) and the receipts
being gathered by a hub (the first role) and handed to everyone, so each party
leaves with the whole co-signed record. :func:`verify_run` checks such a set
offline and raises on the first problem.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sealroom.crypto.keys import Identity
from sealroom.errors import StatementFormatError, VerificationFailed
from sealroom.protocols.channel import Channel
from sealroom.statements import (
    Envelope,
    OutputRef,
    ProtocolParticipant,
    ProtocolReceipt,
    Signed,
    StreamDigest,
    canonical_json,
    output_commitment,
    sign_statement,
)
from sealroom.statements.envelope import MAX_ENVELOPE_SIZE
from sealroom.statements.fields import Digest
from sealroom.verification.protocol_runs import verify_run

__all__ = [
    "RunRecord",
    "code_digest",
    "exchange_receipts",
    "share_all",
    "sign_receipt",
    "verify_run",
]

# The modules every protocol runs through, plus each protocol's own.
_COMMON = ("wire.py", "channel.py", "receipts.py")
_MODULES: dict[str, tuple[str, ...]] = {
    "psi": ("group.py", "psi.py"),
    "pjc": ("group.py", "elgamal.py", "pjc.py"),
    "secagg": ("shamir.py", "secagg.py", "fedavg.py"),
    "he": ("he.py",),
}


def code_digest(protocol: str) -> Digest:
    """SHA-256 over the source of the modules that implement ``protocol`` (name, length, bytes)."""
    if protocol not in _MODULES:
        raise VerificationFailed(f"unknown protocol {protocol!r}")
    h = hashlib.sha256(b"sealroom-protocol-code-v1\0")
    package = resources.files("sealroom.protocols")
    for name in (*_COMMON, *_MODULES[protocol]):
        source = package.joinpath(name).read_bytes()
        h.update(f"{name}\0{len(source)}\0".encode())
        h.update(source)
    return Digest("sha256:" + h.hexdigest())


@dataclass(frozen=True)
class RunRecord:
    """What one party keeps: every participant's receipt, and how to open its own output."""

    receipts: tuple[Signed[ProtocolReceipt], ...]
    own: Signed[ProtocolReceipt]
    output: bytes
    salt: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"receipts": [r.envelope.to_dict() for r in self.receipts]}


def sign_receipt(
    channel: Channel,
    *,
    identity: Identity,
    participants: Sequence[ProtocolParticipant],
    parameters: Mapping[str, Any],
    output: Mapping[str, Any],
    request: str | None = None,
    now: int,
    salt: bytes | None = None,
) -> tuple[Signed[ProtocolReceipt], bytes, bytes]:
    """This party's receipt for the run on ``channel``; also the output bytes and salt it commits to."""
    body = canonical_json(dict(output))
    salt = os.urandom(32) if salt is None else salt
    receipt = ProtocolReceipt(
        protocol=channel.protocol,
        protocol_version=channel.version,
        session=channel.session,
        request=request,
        code_digest=code_digest(channel.protocol),
        parameters=dict(parameters),
        participants=tuple(participants),
        role=channel.me,
        transcript=tuple(
            StreamDigest(sender=s, recipient=r, digest=d)
            for (s, r), d in channel.transcript().items()
        ),
        output=OutputRef(recipient=identity.party_id, commitment=output_commitment(salt, body)),
        issued_at=now,
    )
    return sign_statement(receipt, identity), body, salt


def share_all(
    channel: Channel,
    data: bytes,
    *,
    kind: str,
    hub: str,
    roles: Sequence[str],
    max_size: int,
    timeout: float | None = None,
) -> dict[str, bytes]:
    """Every role's ``data``, gathered at ``hub`` and handed to everyone (star topology).

    With ``timeout`` the hub waits that long and shares what arrived (roles
    that dropped out are missing); without it, every role must answer.
    """
    others = [r for r in roles if r != hub]
    if channel.me == hub:
        if timeout is None:
            frames = {r: channel.expect(r, kind) for r in others}
        else:
            frames = channel.collect(others, kind, timeout=timeout)
        got = {hub: data}
        for role, frame in frames.items():
            frame.only(blobs=["data"])
            got[role] = frame.blob("data", max_size=max_size)
        for role in frames:
            channel.send(role, f"{kind}-all", blobs=got)
        return got
    channel.send(hub, kind, blobs={"data": data})
    frame = channel.expect(hub, f"{kind}-all")
    names = set(frame.blobs)
    if not names <= set(roles) or not {hub, channel.me} <= names:
        channel.fail(f"the hub's {kind}-all names the wrong roles")
    got = {r: frame.blob(r, max_size=max_size) for r in roles if r in names}
    if got[channel.me] != data:
        channel.fail(f"the hub altered this party's {kind}")
    return got


def exchange_receipts(
    channel: Channel,
    mine: Signed[ProtocolReceipt],
    *,
    hub: str,
    roles: Sequence[str],
    timeout: float | None = None,
) -> tuple[Signed[ProtocolReceipt], ...]:
    """Gather receipts at ``hub``, hand the set to everyone, verify it.

    With ``timeout`` (protocols that tolerate dropouts) the record holds the
    receipts of the roles that finished; otherwise every role must sign.
    """
    with channel.guard():
        got = share_all(
            channel,
            mine.envelope.to_json(),
            kind="receipt",
            hub=hub,
            roles=roles,
            max_size=MAX_ENVELOPE_SIZE,
            timeout=timeout,
        )
        return verify_run(
            [_envelope(got[r]) for r in roles if r in got], require_all=timeout is None
        )


def _envelope(data: bytes) -> Envelope:
    try:
        return Envelope.from_json(data)
    except StatementFormatError as exc:
        raise VerificationFailed(f"a receipt does not parse: {exc.detail}") from None
