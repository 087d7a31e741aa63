"""A transparency-log witness (C2SP tlog-witness): cosign only checkpoints that extend what it saw.

The witness keeps, per log origin, the latest checkpoint it cosigned. A log submits a new
checkpoint with the size of that one and a consistency proof from it (``add-checkpoint``);
the witness checks the log's signature and the proof, stores the new checkpoint, and only
then returns its cosignature. It never cosigns a rollback or a fork, so a log that shows two
histories needs the keys of enough witnesses, not just its own, to make both look valid.

Refusals follow the spec's status codes, as error classes the HTTP layer maps:
:class:`~sealroom.errors.InvalidInput` 400 (malformed, old size above the new size),
:class:`~sealroom.errors.SignatureInvalid` 403 (no valid signature by the log's key),
:class:`~sealroom.errors.NotFound` 404 (unknown origin), :class:`OldSizeMismatch` 409 (the
old size is not the size last cosigned; carries that size), and
:class:`~sealroom.errors.ProofInvalid` 422 (inconsistent: a fork or a bad proof).

State: one file per origin in the state directory, ``<hex SHA-256(origin)>.note``, holding the
cosigned checkpoint (the log's verified signatures and the witness's own). Check and update
happen under one lock, and the file is replaced atomically and synced before the cosignature
leaves, so a killed witness restarts with the last checkpoint it vouched for (or a later one
it stored but never answered for). One process owns a state directory (an exclusive
``flock``); a second witness on it is refused at start.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sealroom.crypto.files import TEMP_SUFFIX, write_private
from sealroom.crypto.keys import b64decode_strict, b64encode
from sealroom.crypto.merkle import EMPTY_ROOT, HASH_SIZE
from sealroom.errors import (
    BackendUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    ProofInvalid,
    SealroomError,
)
from sealroom.transparency.checkpoint import (
    Checkpoint,
    NoteVerifier,
    open_note,
    split_note,
)
from sealroom.transparency.cosignature import Cosigner
from sealroom.transparency.proof import verify_consistency

__all__ = [
    "MAX_PROOF_LINES",
    "MAX_REQUEST_SIZE",
    "SIZE_CONTENT_TYPE",
    "AddCheckpoint",
    "OldSizeMismatch",
    "Witness",
    "WitnessState",
    "origin_hash",
]

#: The spec caps add-checkpoint proofs at 63 lines.
MAX_PROOF_LINES = 63
#: A request is an old size, at most 63 hashes and a checkpoint with at most 100 signatures.
MAX_REQUEST_SIZE = 64 << 10
#: The content type of a 409 body: the size the witness last cosigned, in decimal.
SIZE_CONTENT_TYPE = "text/x.tlog.size"

_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_LOCK_FILE = "witness.lock"
_log = logging.getLogger("sealroom.witness")
_EVIDENCE_DIR = "evidence"


class OldSizeMismatch(Conflict):
    """The request's old size is not the size this witness last cosigned (HTTP 409)."""

    def __init__(self, detail: str, *, size: int) -> None:
        super().__init__(detail)
        self.size = size


def origin_hash(origin: str) -> str:
    """The lower-case hex SHA-256 of an origin: its path segment and state file name."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


def _size(text: str, what: str) -> int:
    if not _SIZE.fullmatch(text) or int(text) >= 1 << 64:
        raise InvalidInput(f"{what} {text[:24]!r} is not a canonical decimal uint64")
    return int(text)


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """An add-checkpoint request: the old size, a consistency proof from it, the checkpoint."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str

    def encode(self) -> bytes:
        if len(self.proof) > MAX_PROOF_LINES:
            raise InvalidInput(f"a consistency proof of {len(self.proof)} hashes is over 63")
        lines = [f"old {self.old_size}", *(b64encode(h) for h in self.proof)]
        return ("\n".join(lines) + "\n\n" + self.note).encode("utf-8")

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpoint:
        """Parse a request body strictly; every problem is :class:`InvalidInput` (HTTP 400)."""
        if len(body) > MAX_REQUEST_SIZE:
            raise InvalidInput(f"an add-checkpoint request is at most {MAX_REQUEST_SIZE} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("the request is not UTF-8 text") from None
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise InvalidInput("the request has no empty line before the checkpoint")
        lines = head.split("\n")
        first = lines[0]
        if not first.startswith("old "):
            raise InvalidInput("the request must start with 'old <size>'")
        old_size = _size(first[4:], "old size")
        hashes = lines[1:]
        if len(hashes) > MAX_PROOF_LINES:
            raise InvalidInput(f"more than {MAX_PROOF_LINES} consistency proof lines")
        proof: list[bytes] = []
        for number, line in enumerate(hashes, start=1):
            try:
                proof.append(b64decode_strict(line, what="proof hash", size=HASH_SIZE))
            except InvalidInput as exc:
                raise InvalidInput(f"consistency proof line {number}: {exc.detail}") from None
        return cls(old_size, tuple(proof), note)


@dataclass(frozen=True, slots=True)
class _Seen:
    checkpoint: Checkpoint
    note: str


class WitnessState:
    """The latest cosigned checkpoint per origin, one file each, owned by one process."""

    __slots__ = ("_directory", "_lock_fd")

    def __init__(self, directory: Path) -> None:
        self._directory = Path(directory)
        try:
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise BackendUnavailable(
                f"cannot use witness state {self._directory}: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise Conflict(
                f"another witness process holds the state in {self._directory}"
            ) from None
        self._lock_fd: int | None = fd
        for stale in self._directory.glob(f".*{TEMP_SUFFIX}"):
            stale.unlink(missing_ok=True)  # left by a write that was killed; never renamed

    @property
    def directory(self) -> Path:
        return self._directory

    def _path(self, origin: str) -> Path:
        return self._directory / f"{origin_hash(origin)}.note"

    def read(self, origin: str) -> str | None:
        try:
            raw = self._path(origin).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackendUnavailable(f"cannot read witness state: {exc.strerror}") from None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BackendUnavailable(
                f"witness state {self._path(origin)} is not UTF-8 text"
            ) from None

    def write(self, origin: str, note: str) -> None:
        write_private(self._path(origin), note.encode("utf-8"))

    def record_evidence(self, origin: str, evidence: dict[str, object]) -> Path:
        """Keep a validly signed checkpoint that was refused as inconsistent: proof of a fork."""
        doc = json.dumps(evidence, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        name = (
            f"{int(time.time())}-{origin_hash(origin)[:16]}-{hashlib.sha256(doc).hexdigest()[:16]}"
        )
        path = self._directory / _EVIDENCE_DIR / f"{name}.json"
        write_private(path, doc)
        return path

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


class Witness:
    """Cosigns checkpoints of the logs it knows, each only if it extends the last one cosigned."""

    __slots__ = ("_clock", "_cosigner", "_lock", "_logs", "_seen", "_state")

    def __init__(
        self,
        cosigner: Cosigner,
        logs: Sequence[NoteVerifier],
        state: WitnessState,
        *,
        clock: Callable[[], int] = lambda: int(time.time()),
    ) -> None:
        if not logs:
            raise InvalidInput("a witness needs at least one log key to witness")
        self._cosigner = cosigner
        self._logs: dict[str, list[NoteVerifier]] = {}
        for verifier in logs:
            self._logs.setdefault(verifier.name, []).append(verifier)
        self._state = state
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, _Seen] = {}
        for origin in self._logs:
            note = state.read(origin)
            if note is not None:
                self._seen[origin] = self._load(origin, note)

    def _load(self, origin: str, note: str) -> _Seen:
        """A stored checkpoint, checked again: the log's signature and this witness's own."""
        try:
            opened = open_note(note, self._logs[origin])
            checkpoint = Checkpoint.from_body(opened.text)
            body, sigs = split_note(note)
            mine = [s for s in sigs if self._cosigner.key.matches(s)]
            if checkpoint.origin != origin or not mine:
                raise ProofInvalid("it is not a checkpoint of this origin cosigned by this witness")
            for sig in mine:
                self._cosigner.key.verify(body, sig)
        except SealroomError as exc:
            raise BackendUnavailable(
                f"the witness state for {origin!r} in {self._state.directory} does not verify "
                f"({exc.detail or exc.public_message}); refusing to start on it"
            ) from None
        return _Seen(checkpoint, note)

    @property
    def key(self) -> str:
        """This witness's cosignature vkey, for logs and clients to pin."""
        return self._cosigner.key.vkey

    def add_checkpoint(self, request: AddCheckpoint | bytes) -> str:
        """Check a submission; on success store it and return the cosignature line(s)."""
        req = request if isinstance(request, AddCheckpoint) else AddCheckpoint.parse(request)
        try:
            body, _ = split_note(req.note)
            new = Checkpoint.from_body(body)
        except InvalidInput as exc:
            raise InvalidInput(f"malformed checkpoint: {exc.detail}") from None
        verifiers = self._logs.get(new.origin)
        if verifiers is None:
            raise NotFound(f"this witness does not witness the log {new.origin!r}")
        log_signatures = open_note(req.note, verifiers).signatures
        if req.old_size > new.size:
            raise InvalidInput(f"old size {req.old_size} is above the checkpoint's {new.size}")
        with self._lock:
            seen = self._seen.get(new.origin)
            seen_size = seen.checkpoint.size if seen is not None else 0
            if req.old_size != seen_size:
                raise OldSizeMismatch(
                    f"the latest checkpoint cosigned for {new.origin!r} has size {seen_size}, "
                    f"not {req.old_size}",
                    size=seen_size,
                )
            try:
                self._check_consistent(seen, req, new)
            except ProofInvalid as exc:
                self._keep_evidence(new.origin, seen, req, exc)
                raise
            line = self._cosigner.cosign(body, self._clock())
            stored = body + "\n" + "".join(s.line() for s in (*log_signatures, line))
            self._state.write(new.origin, stored)
            self._seen[new.origin] = _Seen(new, stored)
        return line.line()

    def _keep_evidence(
        self, origin: str, seen: _Seen | None, req: AddCheckpoint, refusal: ProofInvalid
    ) -> None:
        """A validly signed, inconsistent checkpoint is evidence the log misbehaved: keep it."""
        evidence: dict[str, object] = {
            "origin": origin,
            "reason": refusal.detail,
            "cosigned": seen.note if seen is not None else None,
            "submitted": req.encode().decode("utf-8"),
            "at": self._clock(),
        }
        try:
            path = self._state.record_evidence(origin, evidence)
        except SealroomError as exc:  # the refusal stands either way
            _log.error("could not keep the evidence of an inconsistent checkpoint: %s", exc)
            return
        _log.warning("refused an inconsistent checkpoint of %r; evidence in %s", origin, path)

    @staticmethod
    def _check_consistent(seen: _Seen | None, req: AddCheckpoint, new: Checkpoint) -> None:
        if new.size == 0 and new.root_hash != EMPTY_ROOT:
            raise ProofInvalid("a checkpoint of size 0 must have the empty tree's root")
        if req.old_size == 0:
            if req.proof:
                raise ProofInvalid("a proof from size 0 must be empty")
            return
        if seen is None:  # unreachable: old_size is the cosigned size, which is non-zero
            raise ProofInvalid(f"no cosigned checkpoint of size {req.old_size} to extend")
        old = seen.checkpoint
        try:
            verify_consistency(old.size, new.size, req.proof, old.root_hash, new.root_hash)
        except ProofInvalid as exc:
            raise ProofInvalid(
                f"refusing to cosign: size {new.size} does not consistently extend the size "
                f"{old.size} cosigned before ({exc.detail})"
            ) from None

    def checkpoint(self, origin_digest: str) -> str:
        """The latest cosigned checkpoint of the log whose origin hashes to ``origin_digest``."""
        with self._lock:
            for origin, seen in self._seen.items():
                if origin_hash(origin) == origin_digest:
                    return seen.note
        raise NotFound("this witness has not cosigned a checkpoint of that log")
