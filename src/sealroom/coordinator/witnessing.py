"""The log operator's side of C2SP tlog-witness: gather cosignatures on the latest checkpoint.

The coordinator submits its latest checkpoint to each configured witness with a consistency
proof from the size that witness last cosigned, and adds the cosignatures it gets back to the
stored checkpoint (its note gains signature lines; its text does not change), which is then
what ``GET /v1/log/checkpoint`` and proof bundles serve. It runs on demand, when a checkpoint
is served, not inside the transactions that append: a slow or absent witness delays reads of
the checkpoint by at most its timeout and never blocks a write. A witness that failed is
left alone for ``retry_after`` seconds; clients that require its cosignature refuse
meanwhile, which is the point.

Which size each witness last cosigned is kept in memory; after a restart the first
submission is answered 409 with that size and is retried once from it, as the spec intends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine, select, update

from sealroom.errors import InvalidInput, ProofInvalid, ProtocolError, SealroomError
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.transparency.checkpoint import Checkpoint, NoteSignature, split_note
from sealroom.transparency.cosignature import CosignerKey, add_signature_lines, cosignatures
from sealroom.transparency.log import TransparencyLog
from sealroom.transparency.sqlstore import SqlLogStore, checkpoints
from sealroom.transparency.witness import SIZE_CONTENT_TYPE, AddCheckpoint

__all__ = ["WitnessEndpoint", "Witnessing"]

_log = logging.getLogger("sealroom.coordinator.witnessing")
_MAX_RESPONSE = 64 << 10


@dataclass(frozen=True, slots=True)
class WitnessEndpoint:
    """A witness the log submits to: its cosignature key and its submission URL prefix."""

    key: CosignerKey
    url: str

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise InvalidInput(f"a witness URL must be http(s)://..., got {self.url!r}")

    @classmethod
    def parse(cls, text: str) -> WitnessEndpoint:
        """``<witness vkey>@<submission URL>`` (base64 has no '@', so the first one after the
        key id ends the key)."""
        name, plus1, rest = text.partition("+")
        key_id, plus2, rest = rest.partition("+")
        key64, at, url = rest.partition("@")
        if not (plus1 and plus2 and at):
            raise InvalidInput(f"a witness is given as <vkey>@<url>, got {text!r}")
        return cls(CosignerKey.from_vkey(f"{name}+{key_id}+{key64}"), url.rstrip("/"))


class Witnessing:
    """Gathers witness cosignatures on the log's latest stored checkpoint."""

    __slots__ = (
        "_cosigned_sizes",
        "_engine",
        "_lock",
        "_monotonic",
        "_resting_until",
        "_retry_after",
        "_timeout",
        "_transport",
        "_witnesses",
    )

    def __init__(
        self,
        engine: Engine,
        witnesses: Sequence[WitnessEndpoint],
        *,
        timeout: float = 5.0,
        retry_after: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if len({w.key.public_key for w in witnesses}) != len(witnesses):
            raise InvalidInput("the same witness key is configured twice")
        self._engine = engine
        self._witnesses = tuple(witnesses)
        self._timeout = timeout
        self._retry_after = retry_after
        self._transport = transport
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cosigned_sizes: dict[str, int] = {}
        self._resting_until: dict[str, float] = {}

    def latest(self) -> str | None:
        """The latest stored checkpoint, with every cosignature the witnesses give for it."""
        with self._lock:
            with read_transaction(self._engine) as conn:
                row = conn.execute(
                    select(checkpoints.c.seq, checkpoints.c.note)
                    .order_by(checkpoints.c.seq.desc())
                    .limit(1)
                ).first()
            if row is None:
                return None
            seq, note = int(row.seq), str(row.note)
            keys = [w.key for w in self._witnesses]
            have = {c.witness.public_key for c in cosignatures(note, keys)}
            now = self._monotonic()
            due = [
                w
                for w in self._witnesses
                if w.key.public_key not in have and self._resting_until.get(w.url, 0.0) <= now
            ]
            if not due:
                return note
            lines = self._gather(note, due)
            if not lines:
                return note
            cosigned = add_signature_lines(note, lines)
            with write_transaction(self._engine) as conn:
                conn.execute(
                    update(checkpoints)
                    .where(checkpoints.c.seq == seq, checkpoints.c.note == note)
                    .values(note=cosigned)
                )
            return cosigned

    def _gather(self, note: str, due: Sequence[WitnessEndpoint]) -> list[NoteSignature]:
        body, _ = split_note(note)
        checkpoint = Checkpoint.from_body(body)
        lines: list[NoteSignature] = []
        with httpx.Client(transport=self._transport, timeout=self._timeout) as http:
            for witness in due:
                try:
                    lines.extend(self._submit(http, witness, checkpoint, note))
                except SealroomError as exc:
                    self._resting_until[witness.url] = self._monotonic() + self._retry_after
                    _log.warning(
                        "witness %s gave no cosignature for size %d: %s",
                        witness.key.label,
                        checkpoint.size,
                        exc.detail or exc.public_message,
                    )
        return lines

    def _submit(
        self, http: httpx.Client, witness: WitnessEndpoint, checkpoint: Checkpoint, note: str
    ) -> list[NoteSignature]:
        old = self._cosigned_sizes.get(witness.url, 0)
        for _ in range(2):
            if old > checkpoint.size:
                raise ProofInvalid(
                    f"the witness cosigned size {old}, beyond this log's latest checkpoint "
                    f"({checkpoint.size}): was the log's database rolled back?"
                )
            proof = self._proof(old, checkpoint.size)
            request = AddCheckpoint(old, tuple(proof), note).encode()
            try:
                response = http.post(f"{witness.url}/add-checkpoint", content=request)
            except httpx.HTTPError as exc:
                raise ProtocolError(f"cannot reach {witness.url}: {type(exc).__name__}") from None
            text = response.content[:_MAX_RESPONSE].decode("utf-8", errors="replace")
            if response.status_code == 409 and response.headers.get("content-type", "").startswith(
                SIZE_CONTENT_TYPE
            ):
                old = _size_line(text)
                self._cosigned_sizes[witness.url] = old
                continue
            if response.status_code != 200:
                raise ProtocolError(f"HTTP {response.status_code}: {text.strip()[:300]}")
            found = self._cosignature(witness, note, text)
            self._cosigned_sizes[witness.url] = checkpoint.size
            return found
        raise ProtocolError("the witness answered 409 twice")

    def _proof(self, old: int, new: int) -> list[bytes]:
        if old in (0, new):
            return []
        return TransparencyLog(SqlLogStore(self._engine)).consistency_proof(old, new)

    @staticmethod
    def _cosignature(witness: WitnessEndpoint, note: str, response: str) -> list[NoteSignature]:
        """The witness's verified cosignature lines from its response (others are ignored)."""
        body, _ = split_note(note)
        combined = body + "\n" + response
        try:
            cosignatures(combined, [witness.key])  # raises if a line of its key does not verify
            _, sigs = split_note(combined)
        except SealroomError as exc:
            raise ProtocolError(f"malformed cosignature response: {exc.detail}") from None
        found = [s for s in sigs if witness.key.matches(s)]
        if not found:
            raise ProtocolError("the response carries no cosignature by this witness's key")
        return found


def _size_line(text: str) -> int:
    line = text.removesuffix("\n")
    if not line.isdigit() or line != str(int(line)):
        raise ProtocolError(f"a 409 from a witness must carry its size, got {text[:40]!r}")
    return int(line)
