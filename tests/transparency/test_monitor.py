from __future__ import annotations

from collections.abc import Sequence

import pytest

from sealroom.crypto.merkle import EMPTY_ROOT, leaf_hash
from sealroom.errors import BackendUnavailable, InvalidInput, ProofInvalid, SignatureInvalid
from sealroom.transparency.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from sealroom.transparency.log import MemoryLogStore, TransparencyLog
from sealroom.transparency.monitor import LogMonitor, advance_checkpoint

ORIGIN = "sealroom.test/log"
SIGNER = NoteSigner.from_seed(ORIGIN, b"\x11" * 32)
VERIFIER = SIGNER.verifier


def make_log(data: Sequence[bytes]) -> TransparencyLog:
    log = TransparencyLog(MemoryLogStore())
    if data:
        log.append_many(data)
    return log


def entries(n: int, tag: bytes) -> list[bytes]:
    return [tag + b"%d" % i for i in range(n)]


class Recorder:
    """A fetch_consistency that serves one log's proofs and records what was asked."""

    def __init__(self, log: TransparencyLog) -> None:
        self.log = log
        self.calls: list[tuple[int, int]] = []

    def __call__(self, size1: int, size2: int) -> list[bytes]:
        self.calls.append((size1, size2))
        return self.log.consistency_proof(size1, size2)


def test_monitor_follows_an_honest_log() -> None:
    log = make_log(entries(3, b"a"))
    fetch = Recorder(log)
    monitor = LogMonitor(VERIFIER, fetch)
    first = monitor.update(log.checkpoint(SIGNER))  # trust on first use
    assert (first.size, fetch.calls) == (3, [])
    for grow in (1, 5, 17):
        log.append_many(entries(grow, b"b%d-" % grow))
        cp = monitor.update(log.checkpoint(SIGNER))
        assert cp.size == log.size()
        assert monitor.trusted == cp
    assert fetch.calls == [(3, 4), (4, 9), (9, 26)]
    # Same checkpoint again: nothing to prove, no fetch.
    assert monitor.update(log.checkpoint(SIGNER)).size == 26
    assert len(fetch.calls) == 3


def test_forked_log_is_detected() -> None:
    """A log that shows one client a history and then rewrites it for a later checkpoint."""
    honest = make_log(entries(10, b"e"))
    trusted = advance_checkpoint(None, honest.checkpoint(SIGNER), VERIFIER, Recorder(honest))
    # Same key, same first 5 entries, different entries after: a fork that the (malicious)
    # operator signs, and whose own consistency proofs it serves.
    fork = make_log(entries(5, b"e") + entries(8, b"f"))
    fork_note = fork.checkpoint(SIGNER)
    with pytest.raises(ProofInvalid, match="fork or bad proof"):
        advance_checkpoint(trusted, fork_note, VERIFIER, Recorder(fork))
    # Proofs from the honest log do not help either: they lead to the honest root.
    honest.append_many(entries(3, b"g"))
    with pytest.raises(ProofInvalid, match="fork or bad proof"):
        advance_checkpoint(trusted, fork_note, VERIFIER, Recorder(honest))


def test_fork_at_the_same_size_is_detected() -> None:
    honest = make_log(entries(10, b"e"))
    trusted = advance_checkpoint(None, honest.checkpoint(SIGNER), VERIFIER, Recorder(honest))
    fork = make_log([*entries(9, b"e"), b"other"])
    fetch = Recorder(fork)
    with pytest.raises(ProofInvalid, match="fork: two different roots for tree size 10"):
        advance_checkpoint(trusted, fork.checkpoint(SIGNER), VERIFIER, fetch)
    assert fetch.calls == []


def test_rollback_is_detected() -> None:
    log = make_log(entries(4, b"e"))
    old_note = log.checkpoint(SIGNER)
    log.append_many(entries(4, b"n"))
    fetch = Recorder(log)
    monitor = LogMonitor(VERIFIER, fetch)
    monitor.update(old_note)
    newest = monitor.update(log.checkpoint(SIGNER))
    with pytest.raises(ProofInvalid, match="rollback: the log shows size 4"):
        monitor.update(old_note)  # a replayed, genuinely signed, older checkpoint
    assert monitor.trusted == newest


@pytest.mark.parametrize("tamper", ["flip", "truncate", "extend", "empty", "other-sizes"])
def test_bad_proofs_are_rejected(tamper: str) -> None:
    log = make_log(entries(6, b"e"))
    monitor = LogMonitor(VERIFIER, Recorder(log))
    start = monitor.update(log.checkpoint(SIGNER))
    log.append_many(entries(7, b"n"))
    note = log.checkpoint(SIGNER)

    def bad_fetch(size1: int, size2: int) -> list[bytes]:
        proof = log.consistency_proof(size1, size2)
        if tamper == "flip":
            proof[1] = bytes([proof[1][0] ^ 1]) + proof[1][1:]
        elif tamper == "truncate":
            proof = proof[:-1]
        elif tamper == "extend":
            proof = [*proof, leaf_hash(b"x")]
        elif tamper == "empty":
            proof = []
        else:
            proof = log.consistency_proof(size1 - 1, size2)
        return proof

    bad = LogMonitor(VERIFIER, bad_fetch, start)
    with pytest.raises(ProofInvalid):
        bad.update(note)
    assert bad.trusted == start  # a failed update changes nothing
    assert LogMonitor(VERIFIER, Recorder(log), start).update(note).size == 13


def test_note_must_open() -> None:
    log = make_log(entries(2, b"e"))
    monitor = LogMonitor(VERIFIER, Recorder(log))
    impostor = NoteSigner.from_seed(ORIGIN, b"\x22" * 32)
    with pytest.raises(SignatureInvalid):
        monitor.update(log.checkpoint(impostor))
    with pytest.raises(InvalidInput, match="malformed note"):
        monitor.update(log.checkpoint(SIGNER) + "garbage\n")
    assert monitor.trusted is None


def test_origin_is_pinned() -> None:
    other_origin = NoteSigner.from_seed("sealroom.test/other", b"\x11" * 32)
    cp = Checkpoint("sealroom.test/other", 1, leaf_hash(b"a"))
    note = sign_checkpoint(cp, other_origin)
    with pytest.raises(SignatureInvalid):  # other key name: not our verifier's signature
        advance_checkpoint(None, note, VERIFIER, lambda a, b: [])
    trusted = Checkpoint(ORIGIN, 1, leaf_hash(b"a"))
    mislabeled = sign_checkpoint(Checkpoint("sealroom.test/elsewhere", 1, leaf_hash(b"a")), SIGNER)
    with pytest.raises(ProofInvalid, match="origin"):
        advance_checkpoint(trusted, mislabeled, VERIFIER, lambda a, b: [])


def test_from_the_empty_tree_no_proof_is_needed() -> None:
    log = make_log([])
    fetch = Recorder(log)
    monitor = LogMonitor(VERIFIER, fetch)
    assert monitor.update(log.checkpoint(SIGNER)).root_hash == EMPTY_ROOT
    log.append_many(entries(5, b"e"))
    assert monitor.update(log.checkpoint(SIGNER)).size == 5
    assert fetch.calls == []
    bogus_empty = Checkpoint(ORIGIN, 0, leaf_hash(b"not empty"))
    with pytest.raises(ProofInvalid, match="non-empty root for size 0"):
        advance_checkpoint(bogus_empty, log.checkpoint(SIGNER), VERIFIER, fetch)


def test_fetch_failure_propagates_and_keeps_state() -> None:
    log = make_log(entries(3, b"e"))
    monitor = LogMonitor(VERIFIER, Recorder(log))
    start = monitor.update(log.checkpoint(SIGNER))

    def down(size1: int, size2: int) -> list[bytes]:
        raise BackendUnavailable("log unreachable")

    log.append(b"x")
    failing = LogMonitor(VERIFIER, down, start)
    with pytest.raises(BackendUnavailable):
        failing.update(log.checkpoint(SIGNER))
    assert failing.trusted == start
