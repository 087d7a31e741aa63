"""Client-side monitoring: accept a log's new checkpoint only if it extends the one we trust.

A signature alone proves the log said something, not that it said the same thing to
everyone. So a client never moves to a new checkpoint without a consistency proof from the
last one it trusted; rollbacks and forks (two roots for one size, or a tree that does not
extend the old one) are refused. The caller persists the returned checkpoint as its new
trusted state, and should gossip it (witnesses) to catch split views.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sealroom.crypto.merkle import EMPTY_ROOT
from sealroom.errors import ProofInvalid
from sealroom.transparency.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from sealroom.transparency.proof import verify_consistency

__all__ = ["ConsistencyFetcher", "LogMonitor", "advance_checkpoint"]

#: ``fetch_consistency(size1, size2)`` returns the log's consistency proof between sizes.
ConsistencyFetcher = Callable[[int, int], Sequence[bytes]]


def advance_checkpoint(
    trusted: Checkpoint | None,
    note: str | bytes,
    verifier: NoteVerifier,
    fetch_consistency: ConsistencyFetcher,
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Open ``note`` and return its checkpoint if it consistently extends ``trusted``.

    ``trusted=None`` is trust on first use: the note's signature is all that is checked.
    Raises :class:`ProofInvalid` on a rollback, a fork or a bad proof, and the errors of
    :func:`open_checkpoint` on a note that does not open.
    """
    new = open_checkpoint(note, verifier, origin=origin)
    if trusted is None:
        return new
    if new.origin != trusted.origin:
        raise ProofInvalid(f"checkpoint origin {new.origin!r} is not {trusted.origin!r}")
    if new.size < trusted.size:
        raise ProofInvalid(
            f"rollback: the log shows size {new.size}, but size {trusted.size} was seen before"
        )
    if new.size == trusted.size:
        if new.root_hash != trusted.root_hash:
            raise ProofInvalid(f"fork: two different roots for tree size {new.size}")
        return new
    if trusted.size == 0:
        # Every tree extends the empty one; there is no proof to ask for (RFC 9162 2.1.4).
        if trusted.root_hash != EMPTY_ROOT:
            raise ProofInvalid("the trusted checkpoint has a non-empty root for size 0")
        return new
    proof = list(fetch_consistency(trusted.size, new.size))
    try:
        verify_consistency(trusted.size, new.size, proof, trusted.root_hash, new.root_hash)
    except ProofInvalid as exc:
        raise ProofInvalid(
            f"fork or bad proof: size {new.size} does not extend the trusted size "
            f"{trusted.size}: {exc}"
        ) from exc
    return new


class LogMonitor:
    """Holds the last checkpoint a client trusts and advances it one verified step at a time."""

    __slots__ = ("_fetch", "_origin", "_trusted", "_verifier")

    def __init__(
        self,
        verifier: NoteVerifier,
        fetch_consistency: ConsistencyFetcher,
        trusted: Checkpoint | None = None,
        *,
        origin: str | None = None,
    ) -> None:
        self._verifier = verifier
        self._fetch = fetch_consistency
        self._trusted = trusted
        self._origin = origin

    @property
    def trusted(self) -> Checkpoint | None:
        return self._trusted

    def update(self, note: str | bytes) -> Checkpoint:
        """Verify ``note`` against the trusted checkpoint; on success it becomes trusted."""
        new = advance_checkpoint(
            self._trusted, note, self._verifier, self._fetch, origin=self._origin
        )
        self._trusted = new
        return new
