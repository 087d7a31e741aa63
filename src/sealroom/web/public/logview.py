"""The log browser's checks, recomputed on the page's own code path.

The browser shows what the API shows an unauthenticated caller (the same
:class:`~sealroom.coordinator.log.Log` reads) and then checks it the way a
monitor would, with :mod:`sealroom.transparency`: the checkpoint's signature
against the log key, an entry's leaf hash against what the entry shows, its
inclusion proof against the signed root, and a consistency proof between two
signed checkpoints. Each check raises on failure and is shown as what was checked;
these checks are made by the same server that serves the log, so they show the
proofs work, not that the server is honest: the page gives the offline command too.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from sealroom.coordinator.log import Log
from sealroom.crypto.merkle import leaf_hash
from sealroom.errors import ProofInvalid
from sealroom.statements import Envelope
from sealroom.transparency.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from sealroom.transparency.entries import commitment_entry
from sealroom.transparency.proof import verify_consistency, verify_inclusion
from sealroom.wire import LogEntryView

__all__ = [
    "CheckedCheckpoint",
    "CheckedConsistency",
    "CheckedEntry",
    "b64",
    "check_consistency",
    "check_entry",
    "check_held_checkpoint",
    "latest_checkpoint",
]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class CheckedCheckpoint:
    """A signed checkpoint whose signature was verified with ``vkey``."""

    note: str
    checkpoint: Checkpoint
    vkey: str


def _open(note: str, verifier: NoteVerifier, vkey: str) -> CheckedCheckpoint:
    return CheckedCheckpoint(note, open_checkpoint(note, verifier), vkey)


def _verifier(log: Log) -> tuple[NoteVerifier, str]:
    vkey = log.key().verifier_key
    return NoteVerifier.from_vkey(vkey), vkey


def latest_checkpoint(log: Log) -> CheckedCheckpoint:
    """The API's latest checkpoint, its signature checked with the log's key."""
    verifier, vkey = _verifier(log)
    return _open(log.checkpoint(), verifier, vkey)


@dataclass(frozen=True, slots=True)
class CheckedEntry:
    """An entry as the API shows it, its leaf recomputed and its inclusion proof checked."""

    view: LogEntryView
    statement_json: str | None
    statement_type: str | None
    against: CheckedCheckpoint
    proof: tuple[str, ...]
    checked: tuple[str, ...]


def check_entry(log: Log, index: int) -> CheckedEntry:
    """Entry ``index`` (as ``GET /v1/log/entries/{index}``) proven in the latest checkpoint.

    Raises :class:`~sealroom.errors.ProofInvalid` (or another SealroomError) if any
    check fails: a page never shows "checked" for something that was not.
    """
    view = log.entry(index)
    head = latest_checkpoint(log)
    checked = [
        f"checkpoint signature: verified with the log key {head.vkey}",
    ]
    served = bytes(view.leaf_hash)
    statement_json: str | None = None
    statement_type: str | None = None
    if view.entry is not None:
        env: Envelope = view.entry
        recomputed = leaf_hash(env.to_json())
        statement_json = json.dumps(env.to_dict(), indent=2, sort_keys=True)
        statement_type = env.type
        what = "the statement shown (its canonical JSON)"
    elif view.commitment is not None:
        recomputed = leaf_hash(commitment_entry(view.commitment))
        what = "the commitment shown"
    else:
        recomputed = served
        what = ""
    if recomputed != served:
        raise ProofInvalid(f"entry {index}: the leaf hash served is not that of {what}")
    if what:
        checked.append(f"leaf hash: recomputed from {what}, equal to the served {b64(served)}")
    else:
        checked.append("leaf hash: withheld entry, only its hash is public")
    size = head.checkpoint.size
    proof = log.inclusion(index, size).proof
    verify_inclusion(index, size, served, [bytes(p) for p in proof], head.checkpoint.root_hash)
    checked.append(
        f"inclusion: {len(proof)} proof hashes lead from leaf {index} to the signed root "
        f"{b64(head.checkpoint.root_hash)} of tree size {size} (RFC 9162)"
    )
    return CheckedEntry(
        view=view,
        statement_json=statement_json,
        statement_type=statement_type,
        against=head,
        proof=tuple(b64(bytes(p)) for p in proof),
        checked=tuple(checked),
    )


@dataclass(frozen=True, slots=True)
class CheckedConsistency:
    older: CheckedCheckpoint
    newer: CheckedCheckpoint
    proof: tuple[str, ...]
    checked: tuple[str, ...]


def check_consistency(log: Log, first: int) -> CheckedConsistency:
    """The log's signed checkpoint at size ``first`` is a prefix of the latest: both
    signatures and the consistency proof (as ``GET /v1/log/consistency``) checked."""
    verifier, vkey = _verifier(log)
    return _extends(log, _open(log.checkpoint_at(first), verifier, vkey))


def check_held_checkpoint(log: Log, note: str) -> CheckedConsistency:
    """A checkpoint the reader kept (a signed note) is a prefix of the latest.

    This is the check a monitor makes, with the reader's own evidence: a note this log
    signed whose tree the latest does not extend is proof of a split view. Raises
    :class:`~sealroom.errors.SignatureInvalid` / ``InvalidInput`` for a note this log did
    not sign and :class:`ProofInvalid` when the log does not extend it.
    """
    verifier, vkey = _verifier(log)
    text = note.replace("\r\n", "\n").strip("\n") + "\n"
    older = _open(text, verifier, vkey)
    if older.checkpoint.size == 0:
        raise ProofInvalid("the empty tree is a prefix of every tree: nothing to prove")
    return _extends(log, older)


def _extends(log: Log, older: CheckedCheckpoint) -> CheckedConsistency:
    newer = latest_checkpoint(log)
    first, second = older.checkpoint.size, newer.checkpoint.size
    if first > second:
        raise ProofInvalid(
            f"the checkpoint is of size {first}, larger than the log's latest ({second}): "
            "this log served you a tree it no longer shows"
        )
    proof = log.consistency(first, second).proof
    verify_consistency(
        first,
        second,
        [bytes(p) for p in proof],
        older.checkpoint.root_hash,
        newer.checkpoint.root_hash,
    )
    checked = (
        f"both checkpoint signatures: verified with the log key {older.vkey}",
        f"consistency: {len(proof)} proof hashes show the tree of size {first} (root "
        f"{b64(older.checkpoint.root_hash)}) is a prefix of the tree of size {second} (root "
        f"{b64(newer.checkpoint.root_hash)}) (RFC 9162)",
    )
    return CheckedConsistency(older, newer, tuple(b64(bytes(p)) for p in proof), checked)
