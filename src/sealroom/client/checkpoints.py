"""What a party's client trusts of each coordinator's log: its last checkpoint and its witnesses.

A signature on a checkpoint shows the log said it, not that it said the same to everyone.
So the client keeps the last checkpoint it accepted for each log and moves only to one that
consistently extends it, with a consistency proof it checks (:func:`advance_checkpoint`). A
checkpoint older than the trusted one must be proved a prefix of it. Every SDK path that
takes a checkpoint from the coordinator goes through :class:`TrustedLog`.

A rollback (the coordinator's latest checkpoint is smaller than one it showed before) or a
fork (two roots for one size, or a proof that does not verify) is refused with
:class:`~sealroom.errors.ProofInvalid`, the two signed checkpoints are kept as evidence, and
the client refuses that log from then on, until a person removes the evidence file.

With a witness policy (m of n witness keys, set by the party), a checkpoint is trusted only
with cosignatures from m of those witnesses, or when a witnessed checkpoint at least as
large proves it is a prefix.

Files, per log (named by the log key's name and id, so one log served at several URLs is
one history), in ``<home>/checkpoints/``, written atomically with mode 0600:

- ``<name>+<id>.note``: the trusted checkpoint, a signed note (``sealroom verify
  --checkpoint`` takes it as it is);
- ``<name>+<id>.witnesses.json``: the witness policy, if the party set one;
- ``<name>+<id>.fork.json``: the evidence of a rollback or fork; while it exists, the log
  is not trusted.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from sealroom.client.http import Client
from sealroom.client.trust import trusted_log_key
from sealroom.crypto.files import write_private
from sealroom.crypto.merkle import EMPTY_ROOT, leaf_hash
from sealroom.errors import (
    InvalidInput,
    ProofInvalid,
    ProtocolError,
    SealroomError,
    VerificationFailed,
)
from sealroom.statements import Envelope, is_public
from sealroom.transparency.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from sealroom.transparency.cosignature import WitnessPolicy
from sealroom.transparency.entries import entry_leaf_hash
from sealroom.transparency.monitor import advance_checkpoint
from sealroom.transparency.proof import verify_consistency, verify_inclusion
from sealroom.verification.bundle import MAX_CONSISTENCY_PROOFS, ConsistencyProof, ProofBundle

__all__ = ["CHECKPOINTS_DIR", "CheckpointStore", "TrustedLog"]

CHECKPOINTS_DIR = "checkpoints"
_MAX_FILE = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class _Trusted:
    note: str
    checkpoint: Checkpoint


class CheckpointStore:
    """The per-log files in ``<home>/checkpoints/`` (see the module docstring)."""

    __slots__ = ("_directory",)

    def __init__(self, home: Path) -> None:
        self._directory = Path(home) / CHECKPOINTS_DIR

    def _file(self, log: NoteVerifier, suffix: str) -> Path:
        return self._directory / f"{_UNSAFE.sub('_', log.name)[:96]}+{log.key_id:08x}{suffix}"

    def note_path(self, log: NoteVerifier) -> Path:
        return self._file(log, ".note")

    def fork_path(self, log: NoteVerifier) -> Path:
        return self._file(log, ".fork.json")

    def witnesses_path(self, log: NoteVerifier) -> Path:
        return self._file(log, ".witnesses.json")

    def _read(self, path: Path) -> bytes | None:
        try:
            with path.open("rb") as fh:
                raw = fh.read(_MAX_FILE + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
        if len(raw) > _MAX_FILE:
            raise InvalidInput(f"{path} is too large")
        return raw

    def trusted(self, log: NoteVerifier) -> _Trusted | None:
        raw = self._read(self.note_path(log))
        if raw is None:
            return None
        try:
            note = raw.decode("utf-8")
            return _Trusted(note, open_checkpoint(note, log))
        except (UnicodeDecodeError, SealroomError):
            raise InvalidInput(
                f"the trusted checkpoint {self.note_path(log)} does not verify under the log's "
                "key; it was changed outside sealroom. Restore it, or remove it to trust the "
                "log's next checkpoint anew"
            ) from None

    def save(self, log: NoteVerifier, note: str) -> None:
        write_private(self.note_path(log), note.encode("utf-8"))

    def fork(self, log: NoteVerifier) -> Path | None:
        """The evidence file of a rollback or fork, if one was recorded."""
        path = self.fork_path(log)
        return path if path.exists() or path.is_symlink() else None

    def record_fork(self, log: NoteVerifier, evidence: dict[str, Any]) -> Path:
        path = self.fork_path(log)
        doc = json.dumps(evidence, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        write_private(path, doc.encode("utf-8"))
        return path

    def witness_policy(self, log: NoteVerifier) -> WitnessPolicy | None:
        path = self.witnesses_path(log)
        raw = self._read(path)
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("version") != 1:
                raise ValueError("not a version 1 witness policy")
            return WitnessPolicy.parse(doc["witnesses"], doc["required"])
        except (ValueError, KeyError, TypeError, SealroomError) as exc:
            raise InvalidInput(
                f"witness policy {path} is malformed ({exc}); fix or remove it"
            ) from None

    def require_witnesses(self, log: NoteVerifier, policy: WitnessPolicy) -> Path:
        path = self.witnesses_path(log)
        doc = {
            "version": 1,
            "log": log.vkey,
            "witnesses": [w.vkey for w in policy.witnesses],
            "required": policy.required,
        }
        write_private(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
        return path

    @contextmanager
    def locked(self, log: NoteVerifier) -> Iterator[None]:
        """Hold this log's files for one read-check-write (other processes of the party wait)."""
        lock = self._file(log, ".lock")
        try:
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise InvalidInput(f"cannot lock {lock}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


class TrustedLog:
    """One coordinator's log as this party checks it: the pinned key, the trusted checkpoint,
    and the witness policy. Opening it refuses a log this client stopped trusting."""

    __slots__ = ("_client", "_store", "_verifier", "_vkey")

    def __init__(self, client: Client, home: Path) -> None:
        self._client = client
        self._vkey = trusted_log_key(client, home)
        self._verifier = NoteVerifier.from_vkey(self._vkey)
        self._store = CheckpointStore(home)
        self._refuse_if_forked()

    @property
    def log_key(self) -> str:
        return self._vkey

    @property
    def checkpoint_path(self) -> Path:
        """The file holding the trusted checkpoint (for ``sealroom verify --checkpoint``)."""
        return self._store.note_path(self._verifier)

    def trusted_note(self) -> str | None:
        """The trusted checkpoint as the signed note it came in (with its cosignatures)."""
        found = self._store.trusted(self._verifier)
        return found.note if found is not None else None

    def witness_policy(self) -> WitnessPolicy | None:
        return self._store.witness_policy(self._verifier)

    def require_witnesses(self, policy: WitnessPolicy) -> Path:
        """Trust this log's checkpoints from now on only with ``policy``'s cosignatures."""
        return self._store.require_witnesses(self._verifier, policy)

    def _refuse_if_forked(self) -> None:
        evidence = self._store.fork(self._verifier)
        if evidence is not None:
            raise ProofInvalid(
                f"this client stopped trusting the log {self._verifier.name!r} after it showed "
                f"a rollback or fork; the evidence is in {evidence}. Once a person has resolved "
                "it, remove that file to trust this log again"
            )

    # --- accepting checkpoints ---------------------------------------------------------

    def latest(self) -> Checkpoint:
        """Fetch the coordinator's latest checkpoint and advance the trusted one to it."""
        return self.accept(self._client.log_checkpoint(), latest=True)

    def accept(self, note: str, *, latest: bool = False) -> Checkpoint:
        """Open ``note`` and accept it only if it is consistent with the trusted checkpoint.

        A larger checkpoint becomes the trusted one. ``latest`` says the coordinator presents
        it as its newest, so a smaller one is a rollback; otherwise (a bundle made earlier)
        it must be proved a prefix of the trusted one.
        """
        with self._store.locked(self._verifier):
            self._refuse_if_forked()
            return self._accept(note, latest=latest)

    def _accept(self, note: str, *, latest: bool) -> Checkpoint:
        new = open_checkpoint(note, self._verifier)
        trusted = self._store.trusted(self._verifier)
        policy = self._store.witness_policy(self._verifier)
        if policy is not None and not _witnessed(policy, note):
            if latest:
                policy.check(note)  # raises: the latest checkpoint must carry the cosignatures
            if (
                trusted is None
                or new.size > trusted.checkpoint.size
                or not _witnessed(policy, trusted.note)
            ):
                anchor = self._client.log_checkpoint()
                policy.check(anchor)
                witnessed = self._relate(anchor, latest=True)
            else:
                witnessed = trusted.checkpoint
            if new.size > witnessed.size:
                raise ProofInvalid(
                    f"the checkpoint (size {new.size}) has too few witness cosignatures, and "
                    f"the coordinator's witnessed checkpoint (size {witnessed.size}) is older, "
                    "so nothing vouches for it"
                )
        return self._relate(note, latest=latest)

    def _relate(self, note: str, *, latest: bool) -> Checkpoint:
        """Check ``note`` against the trusted checkpoint; store it if it extends it."""
        log = self._verifier
        new = open_checkpoint(note, log)
        trusted = self._store.trusted(log)
        if trusted is None:
            self._store.save(log, note)  # trust on first use (witnessed, under a policy)
            return new
        old = trusted.checkpoint
        if new.size >= old.size:
            try:
                advance_checkpoint(old, note, log, self._consistency)
            except ProofInvalid as exc:
                self._fork(trusted, note, "fork", exc.detail or "")
            if new.size > old.size or latest:
                self._store.save(log, note)
            return new
        if latest:
            self._fork(
                trusted,
                note,
                "rollback",
                f"its latest checkpoint has size {new.size}, but size {old.size} was seen before",
            )
        try:
            if new.size == 0:
                if new.root_hash != EMPTY_ROOT:
                    raise ProofInvalid("a checkpoint of size 0 has a non-empty root")
            else:
                proof = self._consistency(new.size, old.size)
                verify_consistency(new.size, old.size, proof, new.root_hash, old.root_hash)
        except ProofInvalid as exc:
            self._fork(
                trusted,
                note,
                "fork",
                f"size {new.size} is not a prefix of the trusted size {old.size}: {exc.detail}",
            )
        return new

    def _consistency(self, first: int, second: int) -> list[bytes]:
        view = self._client.log_consistency(first, second)
        if (view.first, view.second) != (first, second):
            raise ProtocolError("the coordinator answered a consistency proof for other sizes")
        return list(view.proof)

    def _fork(self, trusted: _Trusted, note: str, kind: str, reason: str) -> NoReturn:
        path = self._store.record_fork(
            self._verifier,
            {
                "version": 1,
                "kind": kind,
                "reason": reason,
                "log": self._vkey,
                "coordinator": self._client.base_url,
                "trusted": trusted.note,
                "presented": note,
                "detected_at": int(time.time()),
            },
        )
        raise ProofInvalid(
            f"the coordinator at {self._client.base_url} showed a {kind} of the log "
            f"{self._verifier.name!r}: {reason}. This client no longer trusts that log; both "
            f"signed checkpoints are kept as evidence in {path}. Once a person has resolved "
            "it, remove that file to trust the log again"
        )

    # --- what the flows check ----------------------------------------------------------

    def verify_inclusion(
        self, envelope: Envelope, *, index: int, proof: tuple[bytes, ...], checkpoint: str
    ) -> Checkpoint:
        """``envelope`` is leaf ``index`` of ``checkpoint``, which is consistent with the log
        this client trusts."""
        cp = open_checkpoint(checkpoint, self._verifier)
        if index >= cp.size:
            raise ProofInvalid(f"log index {index} is beyond the checkpoint's size {cp.size}")
        verify_inclusion(index, cp.size, leaf_hash(envelope.to_json()), proof, cp.root_hash)
        return self.accept(checkpoint)

    def verify_logged(
        self, envelope: Envelope, *, index: int, salt: bytes | None = None
    ) -> Checkpoint:
        """``envelope`` is leaf ``index`` of the coordinator's latest (trusted) checkpoint: in
        clear if it is a public statement, else as the commitment opened by ``salt`` (a private
        statement the coordinator published in clear is refused: it leaked)."""
        if salt is None and not is_public(envelope.type):
            raise VerificationFailed(
                f"the coordinator logged your {envelope.type} in clear, for anyone to read, "
                "instead of as a salted commitment"
            )
        cp = self.latest()
        if index >= cp.size:
            raise ProofInvalid(f"log index {index} is beyond the latest checkpoint's {cp.size}")
        view = self._client.log_inclusion(index, cp.size)
        if (view.index, view.size) != (index, cp.size):
            raise ProtocolError("the coordinator answered an inclusion proof for another leaf")
        leaf = entry_leaf_hash(envelope.to_json(), salt)
        verify_inclusion(index, cp.size, leaf, view.proof, cp.root_hash)
        return cp

    def prove(self, bundle: ProofBundle, against: str) -> ProofBundle:
        """``bundle`` carrying a consistency proof between its checkpoint and ``against`` (a
        checkpoint of the same log), fetched from the coordinator and checked here, so an
        offline verifier trusting ``against`` can relate the two."""
        if bundle.log.verifier_key != self._vkey:
            raise InvalidInput("the bundle is not from this coordinator's log")
        mine = open_checkpoint(bundle.log.checkpoint, self._verifier)
        other = open_checkpoint(against, self._verifier)
        if other.size == mine.size or min(other.size, mine.size) == 0:
            return bundle  # nothing to prove offline: equal sizes compare roots
        low, high = sorted((mine, other), key=lambda c: c.size)
        proof = self._consistency(low.size, high.size)
        verify_consistency(low.size, high.size, proof, low.root_hash, high.root_hash)
        kept = [c for c in bundle.log.consistency if c.size != other.size]
        if len(kept) >= MAX_CONSISTENCY_PROOFS:
            raise InvalidInput(f"the bundle already carries {len(kept)} consistency proofs")
        carried = ConsistencyProof(size=other.size, proof=tuple(proof))
        log = dataclasses.replace(bundle.log, consistency=(*kept, carried))
        return dataclasses.replace(bundle, log=log)


def _witnessed(policy: WitnessPolicy, note: str) -> bool:
    try:
        policy.check(note)
    except ProofInvalid:
        return False
    return True
