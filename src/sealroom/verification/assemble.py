"""Packing a receipt and everything it refers to into a :class:`ProofBundle`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sealroom.errors import InvalidInput
from sealroom.statements import Envelope, ReleasedOutput
from sealroom.transparency.checkpoint import NoteVerifier, open_checkpoint
from sealroom.transparency.entries import committed_entry
from sealroom.transparency.log import TransparencyLog
from sealroom.verification.bundle import LogEntryProof, LogProof, ProofBundle

__all__ = ["assemble_bundle"]


def assemble_bundle(
    *,
    receipt: Envelope,
    evidence: Envelope,
    statements: Sequence[Envelope],
    log: TransparencyLog,
    indices: Mapping[str, int],
    checkpoint: str,
    verifier_key: str,
    outputs: Sequence[ReleasedOutput] = (),
    salts: Mapping[str, bytes] | None = None,
) -> ProofBundle:
    """Bundle ``receipt`` with proofs of every statement against ``checkpoint``.

    ``indices`` maps each statement digest to its leaf index in ``log``; ``salts`` maps
    the digest of each private statement to the salt of its leaf's commitment (statements
    without one were logged in clear). The checkpoint is opened (its signature checked)
    before anything is packed, so a bundle is never built on a checkpoint its own log key
    did not sign, and each leaf is checked to be the statement (or its commitment).
    """
    salts = salts or {}
    cp = open_checkpoint(checkpoint, NoteVerifier.from_vkey(verifier_key))
    entries = []
    for env in (receipt, evidence, *statements):
        index = indices.get(env.digest)
        if index is None:
            raise InvalidInput(f"{env.type} {env.digest} has not been logged")
        if index >= cp.size:
            raise InvalidInput(f"{env.type} {env.digest} is not covered by the checkpoint")
        salt = salts.get(env.digest)
        if log.entry(index) != committed_entry(env.to_json(), salt):
            raise InvalidInput(f"log entry {index} is not {env.type} {env.digest}")
        entries.append(
            LogEntryProof(
                digest=env.digest,
                index=index,
                proof=tuple(log.inclusion_proof(index, cp.size)),
                salt=salt,
            )
        )
    return ProofBundle(
        receipt=receipt,
        evidence=evidence,
        statements=tuple(statements),
        log=LogProof(verifier_key=verifier_key, checkpoint=checkpoint, entries=tuple(entries)),
        outputs=tuple(outputs),
    )
