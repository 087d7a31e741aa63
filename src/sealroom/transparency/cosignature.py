"""Witness cosignatures on checkpoints (C2SP tlog-cosignature, Ed25519 ``cosignature/v1``).

A cosignature is a witness's signed statement that, at the time it names, the checkpoint
was the largest tree of its log the witness had checked to be consistent with everything it
saw before. A client that requires cosignatures from m of n independent witnesses cannot be
shown a fork of the log unless m witnesses were shown the same fork.

Formats (https://c2sp.org/tlog-cosignature): a cosignature is a note signature line whose
key id is ``SHA-256(name || 0x0A || 0x04 || public key)[:4]`` and whose signature is
``u64 big-endian timestamp || Ed25519(message)``, with the message
``cosignature/v1\\ntime <timestamp>\\n`` followed by the whole checkpoint body. The Ed25519
message does not commit to the witness's name, so one key must serve one witness only.

Verification follows the signed-note rules: lines from unknown keys are ignored; a line whose
name and key id match a trusted witness must verify, or the note is rejected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealroom.crypto.keys import verify_ed25519
from sealroom.errors import InvalidInput, ProofInvalid, SignatureInvalid
from sealroom.transparency.checkpoint import NoteKey, NoteSignature, split_note

__all__ = [
    "ALG_COSIGNATURE_V1",
    "MAX_TIMESTAMP",
    "Cosignature",
    "Cosigner",
    "CosignerKey",
    "WitnessPolicy",
    "add_signature_lines",
    "cosignature_message",
    "cosignatures",
]

#: Signature type byte of timestamped Ed25519 cosignatures (signed-note's registry).
ALG_COSIGNATURE_V1 = 0x04
#: Timestamps are u64 on the wire but must not exceed 2**63 - 1 (the spec).
MAX_TIMESTAMP = (1 << 63) - 1
_TIMESTAMP_SIZE = 8
_SIGNATURE_SIZE = _TIMESTAMP_SIZE + 64


def cosignature_message(body: str, timestamp: int) -> bytes:
    """What a v1 cosigner signs: header line, timestamp line, then the checkpoint body."""
    _check_timestamp(timestamp, error=InvalidInput)
    if not isinstance(body, str) or not body.endswith("\n"):
        raise InvalidInput("a cosigned checkpoint body must be text ending in a newline")
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode("utf-8")


def _check_timestamp(timestamp: object, *, error: type[InvalidInput | SignatureInvalid]) -> int:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise error("a cosignature timestamp must be an integer")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise error(f"a cosignature timestamp must be in [0, 2**63 - 1], got {timestamp}")
    return timestamp


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A cosignature that verified: which witness, and the time it vouched at."""

    witness: CosignerKey
    timestamp: int


@dataclass(frozen=True, slots=True)
class CosignerKey(NoteKey):
    """A witness's public key (vkey type 0x04), as a log, client or verifier pins it."""

    ALG: ClassVar[int] = ALG_COSIGNATURE_V1
    KIND: ClassVar[str] = "witness key"

    def verify(self, body: str, signature: NoteSignature) -> Cosignature:
        """Check one cosignature line on the checkpoint ``body``; raise unless it verifies."""
        what = f"cosignature by witness {self.label}"
        if not self.matches(signature):
            raise SignatureInvalid(f"{what}: the line names another key")
        blob = signature.signature
        if len(blob) != _SIGNATURE_SIZE:
            raise SignatureInvalid(
                f"{what}: {len(blob)} bytes, a v1 cosignature is {_SIGNATURE_SIZE} "
                "(8-byte timestamp and 64-byte signature)"
            )
        timestamp = int.from_bytes(blob[:_TIMESTAMP_SIZE], "big")
        _check_timestamp(timestamp, error=SignatureInvalid)
        verify_ed25519(
            self.public_key,
            blob[_TIMESTAMP_SIZE:],
            cosignature_message(body, timestamp),
            what=what,
        )
        return Cosignature(self, timestamp)


class Cosigner:
    """A witness's signing key. Never printed or serialised."""

    __slots__ = ("_key", "_public")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise InvalidInput("a cosigner needs an Ed25519 private key")
        raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._key = private_key
        self._public = CosignerKey(name, raw)

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Cosigner:
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise InvalidInput("an Ed25519 seed must be 32 bytes")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def key(self) -> CosignerKey:
        return self._public

    def cosign(self, body: str, timestamp: int) -> NoteSignature:
        """The v1 cosignature line on checkpoint ``body`` at ``timestamp`` (never zero)."""
        if _check_timestamp(timestamp, error=InvalidInput) == 0:
            raise InvalidInput("a witness's cosignature must not omit its timestamp (zero)")
        signature = self._key.sign(cosignature_message(body, timestamp))
        blob = timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + signature
        return NoteSignature(self._public.name, self._public.key_id, blob)

    def __repr__(self) -> str:
        return f"Cosigner({self._public.label!r})"


def cosignatures(note: str | bytes, witnesses: Iterable[CosignerKey]) -> tuple[Cosignature, ...]:
    """The cosignatures on ``note`` from ``witnesses``, each verified; one per witness.

    Lines from other keys are ignored (the log's own signature among them). A line that names
    a trusted witness must verify, or the whole note is refused (signed-note's rule).
    """
    body, sigs = split_note(note)
    known = {(w.name, w.key_id): w for w in witnesses}
    found: dict[tuple[str, int], Cosignature] = {}
    for sig in sigs:
        witness = known.get((sig.name, sig.key_id))
        if witness is None:
            continue
        cosig = witness.verify(body, sig)
        previous = found.get((sig.name, sig.key_id))
        if previous is None or cosig.timestamp > previous.timestamp:
            found[(sig.name, sig.key_id)] = cosig
    return tuple(found.values())


def add_signature_lines(note: str, lines: Sequence[NoteSignature]) -> str:
    """``note`` with ``lines`` appended to its signatures (a line already there is not repeated)."""
    _, sigs = split_note(note)
    have = {sig.line() for sig in sigs}
    extra = [line.line() for line in lines if line.line() not in have]
    return note + "".join(dict.fromkeys(extra))


@dataclass(frozen=True, slots=True)
class WitnessPolicy:
    """Require cosignatures from at least ``required`` of ``witnesses`` (m of n)."""

    witnesses: tuple[CosignerKey, ...]
    required: int

    def __post_init__(self) -> None:
        if not isinstance(self.witnesses, tuple) or not self.witnesses:
            raise InvalidInput("a witness policy names at least one witness")
        if len({w.public_key for w in self.witnesses}) != len(self.witnesses):
            raise InvalidInput("a witness policy names the same witness key twice")
        if len({(w.name, w.key_id) for w in self.witnesses}) != len(self.witnesses):
            raise InvalidInput("a witness policy names two keys with one name and key id")
        required = self.required
        if isinstance(required, bool) or not isinstance(required, int):
            raise InvalidInput("the number of required witnesses must be an integer")
        if not 1 <= required <= len(self.witnesses):
            raise InvalidInput(
                f"the number of required witnesses must be between 1 and {len(self.witnesses)}, "
                f"got {required}"
            )

    @classmethod
    def parse(cls, vkeys: Sequence[str], required: int | None = None) -> WitnessPolicy:
        """From witness vkeys; ``required`` defaults to all of them."""
        keys = tuple(CosignerKey.from_vkey(v) for v in vkeys)
        return cls(keys, len(keys) if required is None else required)

    def check(self, note: str | bytes) -> tuple[Cosignature, ...]:
        """The verified cosignatures on ``note``; raise :class:`ProofInvalid` if too few."""
        found = cosignatures(note, self.witnesses)
        if len(found) < self.required:
            names = ", ".join(w.label for w in self.witnesses)
            raise ProofInvalid(
                f"the checkpoint carries {len(found)} of the {self.required} required witness "
                f"cosignatures (witnesses: {names})"
            )
        return found

    def describe(self) -> str:
        return f"{self.required} of {len(self.witnesses)}: " + ", ".join(
            w.label for w in self.witnesses
        )
