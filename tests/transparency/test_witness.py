"""The witness in process: what it cosigns, what it refuses (with which status), its state."""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealroom.api.witness import status_for
from sealroom.errors import Conflict, InvalidInput, NotFound, SealroomError
from sealroom.transparency.checkpoint import (
    Checkpoint,
    NoteSigner,
    open_checkpoint,
    sign_checkpoint,
    split_note,
)
from sealroom.transparency.cosignature import cosignatures
from sealroom.transparency.witness import (
    AddCheckpoint,
    OldSizeMismatch,
    Witness,
    WitnessState,
    origin_hash,
)
from tests.transparency.witness_helpers import (
    LOG_KEY,
    ORIGIN,
    cosigner,
    entries,
    forks,
    log_of,
    submission,
)

T = 1_790_000_000


@pytest.fixture
def state(tmp_path: Path) -> Iterator[WitnessState]:
    own = WitnessState(tmp_path / "state")
    yield own
    own.close()


def make_witness(state: WitnessState) -> Witness:
    return Witness(cosigner(), [LOG_KEY.verifier], state, clock=lambda: T)


def refusal(witness: Witness, request: AddCheckpoint | bytes) -> tuple[int, SealroomError]:
    with pytest.raises(SealroomError) as info:
        witness.add_checkpoint(request)
    return status_for(info.value), info.value


def test_cosigns_a_first_checkpoint_and_consistent_extensions(state: WitnessState) -> None:
    w = make_witness(state)
    log = log_of(entries(5))
    line = w.add_checkpoint(submission(log, 0))
    note = log.latest_checkpoint()
    assert note is not None
    (found,) = cosignatures(note + line, [cosigner().key])
    assert found.timestamp == T
    for grow in (1, 7, 64):
        old = log.size()
        log.append_many(entries(grow, b"more%d-" % grow))
        w.add_checkpoint(submission(log, old))
    # the same checkpoint again is consistent with itself (and cosigned afresh)
    w.add_checkpoint(submission(log, log.size()))
    stored = w.checkpoint(origin_hash(ORIGIN))
    assert open_checkpoint(stored, LOG_KEY.verifier).size == log.size()
    assert len(cosignatures(stored, [cosigner().key])) == 1


def test_the_empty_log_and_a_first_checkpoint_from_size_zero(state: WitnessState) -> None:
    w = make_witness(state)
    empty = log_of([])
    w.add_checkpoint(submission(empty, 0))
    log = log_of(entries(3))
    w.add_checkpoint(submission(log, 0))  # anything extends the empty tree


def test_refuses_a_fork_of_the_same_size(state: WitnessState) -> None:
    w = make_witness(state)
    left, right = forks(4, 3, 3)
    w.add_checkpoint(submission(left, 0))
    status, exc = refusal(w, submission(right, 7))
    assert status == 422
    assert "does not consistently extend" in str(exc)
    evidence = list((state.directory / "evidence").glob("*.json"))
    assert len(evidence) == 1
    kept = json.loads(evidence[0].read_text())
    assert kept["cosigned"].startswith(ORIGIN)
    assert kept["submitted"].startswith("old 7\n")
    assert stat.S_IMODE(evidence[0].stat().st_mode) == 0o600


def test_refuses_a_fork_that_extends_with_its_own_proof(state: WitnessState) -> None:
    w = make_witness(state)
    left, right = forks(4, 3, 9)
    w.add_checkpoint(submission(left, 0))  # size 7
    # the right fork proves 7 -> 13 in its own tree, whose size 7 is not the one cosigned
    status, _ = refusal(w, submission(right, 7))
    assert status == 422
    # and with the left fork's size-7 history spliced in, the proof still fails
    fake = submission(right, 7)
    status, _ = refusal(w, AddCheckpoint(7, tuple(left.consistency_proof(4, 7)), fake.note))
    assert status == 422
    assert w.checkpoint(origin_hash(ORIGIN)) == state.read(ORIGIN)
    assert open_checkpoint(w.checkpoint(origin_hash(ORIGIN)), LOG_KEY.verifier).size == 7


def test_refuses_rollbacks(state: WitnessState) -> None:
    w = make_witness(state)
    log = log_of(entries(10))
    old_note = log.checkpoint(LOG_KEY)
    log.append_many(entries(5, b"x"))
    w.add_checkpoint(submission(log, 0))  # size 15
    # old size = what was cosigned, checkpoint smaller: 400 (old size above the new size)
    status, _ = refusal(w, AddCheckpoint(15, (), old_note))
    assert status == 400
    # old size = the smaller checkpoint's: 409 with the size that was cosigned
    status, exc = refusal(w, AddCheckpoint(10, (), old_note))
    assert status == 409
    assert isinstance(exc, OldSizeMismatch)
    assert exc.size == 15
    status, exc = refusal(w, AddCheckpoint(0, (), old_note))
    assert status == 409
    assert isinstance(exc, OldSizeMismatch)
    assert exc.size == 15


def test_statuses_of_the_other_refusals(state: WitnessState) -> None:
    w = make_witness(state)
    log = log_of(entries(6))
    good = submission(log, 0)
    # unknown origin
    stranger = NoteSigner.from_seed("other.test/log", b"\x22" * 32)
    status, _ = refusal(w, AddCheckpoint(0, (), log_of(entries(2)).checkpoint(stranger)))
    assert status == 404
    # the right origin signed by another key (a known name with an unknown id is ignored)
    impostor = NoteSigner.from_seed(ORIGIN, b"\x33" * 32)
    status, exc = refusal(w, AddCheckpoint(0, (), log_of(entries(6)).checkpoint(impostor)))
    assert status == 403
    assert "no signature from a trusted key" in str(exc)
    # the log's key line with a broken signature
    body, sigs = split_note(good.note)
    broken = sigs[0].signature[:-1] + bytes([sigs[0].signature[-1] ^ 1])
    bad_note = body + "\n" + type(sigs[0])(sigs[0].name, sigs[0].key_id, broken).line()
    status, _ = refusal(w, AddCheckpoint(0, (), bad_note))
    assert status == 403
    # a proof from size zero
    status, _ = refusal(w, AddCheckpoint(0, (b"\x00" * 32,), good.note))
    assert status == 422
    # size zero with a root that is not the empty tree's
    zero = sign_checkpoint(Checkpoint(ORIGIN, 0, b"\x01" * 32), LOG_KEY)
    status, _ = refusal(w, AddCheckpoint(0, (), zero))
    assert status == 422
    # old size above the checkpoint's size
    status, _ = refusal(w, AddCheckpoint(7, (), good.note))
    assert status == 400
    assert state.read(ORIGIN) is None  # nothing refused was stored
    w.add_checkpoint(good)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"old 0\n",  # no empty line
        b"old 01\n\n",  # not canonical
        b"old -1\n\n",
        b"old 18446744073709551616\n\n",  # 2**64
        b"new 0\n\n",
        b"old 0\nnot base64\n\n",
        b"old 3\nAAAA\n\n",  # not 32 bytes
        b"old 3\n" + b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" * 64 + b"\n",  # 64 lines
        b"old 0\n\nnot a checkpoint\n",
        b"old 0\n\n\xff\xfe",
        b"old 0\n\n" + b"x" * (64 << 10),
    ],
)
def test_malformed_requests_are_400(state: WitnessState, body: bytes) -> None:
    status, _ = refusal(make_witness(state), body)
    assert status == 400


def test_requests_round_trip() -> None:
    log = log_of(entries(9))
    log.checkpoint(LOG_KEY)
    log.append_many(entries(4, b"y"))
    req = submission(log, 9)
    assert AddCheckpoint.parse(req.encode()) == req
    assert req.encode().startswith(b"old 9\n")
    with pytest.raises(InvalidInput, match="63"):
        AddCheckpoint(1, (b"\x00" * 32,) * 64, req.note).encode()


def test_state_survives_a_restart_and_one_process_owns_it(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    first = WitnessState(directory)
    log = log_of(entries(8))
    make_witness(first).add_checkpoint(submission(log, 0))
    with pytest.raises(Conflict, match="another witness process"):
        WitnessState(directory)
    first.close()
    again = WitnessState(directory)
    try:
        w = make_witness(again)
        status, exc = refusal(w, submission(log, 0))
        assert status == 409
        assert isinstance(exc, OldSizeMismatch)
        assert exc.size == 8
        log.append(b"next")
        w.add_checkpoint(submission(log, 8))
        files = [p for p in directory.iterdir() if p.suffix == ".note"]
        assert [p.name for p in files] == [f"{origin_hash(ORIGIN)}.note"]
        assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    finally:
        again.close()


def test_a_tampered_state_file_is_refused_at_start(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    own = WitnessState(directory)
    make_witness(own).add_checkpoint(submission(log_of(entries(8)), 0))
    own.close()
    path = directory / f"{origin_hash(ORIGIN)}.note"
    # a checkpoint the log did sign, but this witness never cosigned
    path.write_text(log_of(entries(3)).checkpoint(LOG_KEY))
    again = WitnessState(directory)
    try:
        with pytest.raises(SealroomError, match="does not verify"):
            make_witness(again)
    finally:
        again.close()


def test_unknown_monitoring_origin_is_404(state: WitnessState) -> None:
    with pytest.raises(NotFound):
        make_witness(state).checkpoint(origin_hash("nobody"))


# --- a kill in the middle of a write -------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from sealroom.transparency.witness import Witness, WitnessState
    from tests.transparency.witness_helpers import LOG_KEY, cosigner, entries, log_of, submission

    state = WitnessState(Path(sys.argv[1]))
    witness = Witness(cosigner(), [LOG_KEY.verifier], state)
    log = log_of(entries(1))
    old = 0
    while True:
        witness.add_checkpoint(submission(log, old))
        old = log.size()
        print(old, flush=True)
        log.append_many(entries(1 + old % 5, b"r%d-" % old))
    """
)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_kill_mid_write_leaves_the_last_cosigned_checkpoint(tmp_path: Path, seed: int) -> None:
    """SIGKILL at a random moment: the state holds a checkpoint at least as large as the last
    one answered for, whole and verifiable, and the witness carries on from it."""
    directory = tmp_path / "state"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    acknowledged = 0
    try:
        assert child.stdout is not None
        for _ in range(random.Random(seed).randrange(3, 40)):
            line = child.stdout.readline()
            assert line, "the witness child died before it was killed"
            acknowledged = int(line)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -9
    state = WitnessState(directory)  # also clears a temporary file a killed write left
    try:
        assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]
        w = Witness(cosigner(), [LOG_KEY.verifier], state)
        stored = state.read(ORIGIN)
        assert stored is not None
        cp = open_checkpoint(stored, LOG_KEY.verifier)
        assert cp.size >= acknowledged
        assert len(cosignatures(stored, [cosigner().key])) == 1
        # it refuses to go back to what it acknowledged unless that is where it stands
        if cp.size > acknowledged:
            status, exc = refusal(w, AddCheckpoint(acknowledged, (), stored))
            assert status == 409
            assert isinstance(exc, OldSizeMismatch)
            assert exc.size == cp.size
        # and goes on from where it stands
        w.add_checkpoint(AddCheckpoint(cp.size, (), stored))
    finally:
        state.close()
