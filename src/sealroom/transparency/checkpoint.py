"""C2SP signed notes and tlog checkpoints (https://c2sp.org/signed-note, /tlog-checkpoint).

The byte format is fixed by the specs and by Go's ``golang.org/x/mod/sumdb/note`` so that
sealroom checkpoints interoperate with witnesses and monitors written for other logs. Parsing
is strict and fails closed: a note either opens completely or raises.

Error mapping: text that does not parse is :class:`InvalidInput`; a bad signature from a
known key, or no signature from any known key, is :class:`SignatureInvalid`; a well-signed
checkpoint for another log (wrong origin) is :class:`ProofInvalid`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, NewType, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealroom.crypto.keys import b64decode_strict, b64encode, verify_ed25519
from sealroom.crypto.merkle import HASH_SIZE
from sealroom.errors import InvalidInput, ProofInvalid, SignatureInvalid
from sealroom.transparency.proof import MAX_TREE_SIZE

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Checkpoint",
    "KeyId",
    "NoteKey",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "SignedNote",
    "check_key_name",
    "key_id_for",
    "open_checkpoint",
    "open_note",
    "sign_checkpoint",
    "sign_note",
    "split_note",
]

#: The 32-bit key ID that, with the key name, names a note key (big-endian on the wire).
KeyId = NewType("KeyId", int)

#: Signature type byte for Ed25519 in key IDs and verifier keys (signed-note spec).
ALG_ED25519 = 0x01
#: The spec asks for a limit and at least 16; Go's note package allows 100.
MAX_SIGNATURES = 100

_SIG_PREFIX = "\u2014 "  # EM DASH, SPACE
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")


def key_id_for(name: str, alg_and_key: bytes) -> KeyId:
    """SHA-256(name || 0x0A || type byte || public key)[:4], as the spec recommends."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + alg_and_key).digest()
    return KeyId(int.from_bytes(digest[:4], "big"))


def check_key_name(name: object) -> str:
    """A note key name: non-empty UTF-8 with no space, '+' or control character."""
    if not isinstance(name, str) or not name:
        raise InvalidInput("note key name must be a non-empty string")
    if "+" in name or any(c.isspace() for c in name) or _CONTROL.search(name):
        raise InvalidInput(f"note key name {name!r} contains a space, '+' or control character")
    _utf8(name, what="note key name")
    return name


def _utf8(text: str, *, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{what} is not valid UTF-8") from exc


def _parse_vkey(vkey: object, alg: int, *, what: str) -> tuple[str, bytes]:
    """The name and Ed25519 key of a vkey ``<name>+<hex key id>+<base64(alg || key)>``; the
    key id must be the one derived from the name, type byte and key."""
    if not isinstance(vkey, str):
        raise InvalidInput(f"{what} must be a string")
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise InvalidInput(f"{what} must look like <name>+<key id>+<key>")
    name, hex_id, key64 = parts
    check_key_name(name)
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise InvalidInput(f"{what} id must be 8 lowercase hex digits")
    key = b64decode_strict(key64, what=what)
    if not key or key[0] != alg:
        got = f"0x{key[0]:02x}" if key else "none"
        raise InvalidInput(
            f"{what}: unknown signature algorithm {got} (expected 0x{alg:02x}, Ed25519)"
        )
    if len(key) != 33:
        raise InvalidInput(f"{what}: an Ed25519 key must be 32 bytes")
    try:
        Ed25519PublicKey.from_public_bytes(key[1:])
    except ValueError as exc:
        raise InvalidInput(f"{what}: not a valid Ed25519 public key") from exc
    if f"{key_id_for(name, key):08x}" != hex_id:
        raise InvalidInput(f"{what} id does not match its name and key")
    return name, key[1:]


@dataclass(frozen=True, slots=True)
class NoteKey:
    """An Ed25519 public key under a note key name, for one signature type.

    Log keys (:class:`NoteVerifier`, type 0x01) and witness cosignature keys (0x04) share
    this; the type byte is part of the key id, so a key of one type never matches a
    signature line of the other.
    """

    ALG: ClassVar[int] = ALG_ED25519
    KIND: ClassVar[str] = "verifier key"

    name: str
    public_key: bytes
    key_id: KeyId = field(init=False, compare=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise InvalidInput(f"an Ed25519 {self.KIND} must be 32 bytes")
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError as exc:
            raise InvalidInput("not a valid Ed25519 public key") from exc
        kid = key_id_for(self.name, bytes([self.ALG]) + self.public_key)
        object.__setattr__(self, "key_id", kid)

    @classmethod
    def from_vkey(cls, vkey: str) -> Self:
        """Parse ``<name>+<hex key id>+<base64(type || key)>`` (Go ``note.NewVerifier``)."""
        name, key = _parse_vkey(vkey, cls.ALG, what=cls.KIND)
        return cls(name, key)

    @property
    def vkey(self) -> str:
        key64 = b64encode(bytes([self.ALG]) + self.public_key)
        return f"{self.name}+{self.key_id:08x}+{key64}"

    @property
    def label(self) -> str:
        return f"{self.name}+{self.key_id:08x}"

    def matches(self, signature: NoteSignature) -> bool:
        """Whether a signature line names this key (by name and key id)."""
        return (signature.name, signature.key_id) == (self.name, self.key_id)


@dataclass(frozen=True, slots=True)
class NoteVerifier(NoteKey):
    """A trusted Ed25519 note key: what a client pins to accept a log's checkpoints."""

    def verify(self, message: bytes, signature: bytes) -> None:
        verify_ed25519(self.public_key, signature, message, what=f"note signature by {self.label}")


class NoteSigner:
    """An Ed25519 note key that can sign. Never printed or serialised."""

    __slots__ = ("_key", "_verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise InvalidInput("a note signer needs an Ed25519 private key")
        public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._key = private_key
        self._verifier = NoteVerifier(name, public)

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> NoteSigner:
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise InvalidInput("an Ed25519 seed must be 32 bytes")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_signer_key(cls, skey: str) -> NoteSigner:
        """Parse Go's ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``."""
        parts = skey.split("+", 4) if isinstance(skey, str) else []
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise InvalidInput("signer key must look like PRIVATE+KEY+<name>+<key id>+<key>")
        _, _, name, hex_id, key64 = parts
        if not _HEX_KEY_ID.fullmatch(hex_id):
            raise InvalidInput("signer key id must be 8 lowercase hex digits")
        try:
            key = b64decode_strict(key64, what="signer key")
        except InvalidInput:
            raise InvalidInput("signer key: not valid base64") from None  # no secret in text
        if len(key) != 33 or key[0] != ALG_ED25519:
            raise InvalidInput("signer key: not an Ed25519 seed")
        signer = cls.from_seed(name, key[1:])
        if f"{signer.key_id:08x}" != hex_id:
            raise InvalidInput("signer key id does not match its name and key")
        return signer

    @property
    def name(self) -> str:
        return self._verifier.name

    @property
    def key_id(self) -> KeyId:
        return self._verifier.key_id

    @property
    def verifier(self) -> NoteVerifier:
        return self._verifier

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"NoteSigner({self._verifier.label!r})"


@dataclass(frozen=True, slots=True)
class NoteSignature:
    name: str
    key_id: KeyId
    signature: bytes

    def line(self) -> str:
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_SIG_PREFIX}{self.name} {b64encode(blob)}\n"


@dataclass(frozen=True, slots=True)
class SignedNote:
    """An opened note: its text and the signatures that verified against trusted keys."""

    text: str
    signatures: tuple[NoteSignature, ...]


def _check_note_text(text: object) -> bytes:
    if not isinstance(text, str) or not text.endswith("\n"):
        raise InvalidInput("note text must be a string ending in a newline")
    if _CONTROL.search(text):
        raise InvalidInput("note text must not contain control characters other than newline")
    return _utf8(text, what="note text")


def sign_note(text: str, signers: Iterable[NoteSigner]) -> str:
    """Sign ``text`` with each signer (once per key) and return the signed note."""
    raw = _check_note_text(text)
    lines: dict[tuple[str, int], str] = {}
    for signer in signers:
        sig = NoteSignature(signer.name, signer.key_id, signer.sign(raw))
        lines.setdefault((signer.name, signer.key_id), sig.line())
    if not lines:
        raise InvalidInput("a signed note needs at least one signer")
    return text + "\n" + "".join(lines.values())


def _decode_message(message: str | bytes) -> str:
    if isinstance(message, bytes):
        try:
            text = message.decode("utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise InvalidInput("malformed note: not valid UTF-8") from exc
    elif isinstance(message, str):
        text = message
        _utf8(text, what="malformed note: the note")
    else:
        raise InvalidInput(f"a note must be str or bytes, got {type(message).__name__}")
    if _CONTROL.search(text):
        raise InvalidInput("malformed note: control character other than newline")
    return text


def split_note(message: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a note into its text and *unverified* signatures; raise if malformed.

    The text of an unverified note must not be trusted; use :func:`open_note`.
    """
    text = _decode_message(message)
    split = text.rfind("\n\n")
    if split < 0:
        raise InvalidInput("malformed note: no blank line before the signatures")
    body, block = text[: split + 1], text[split + 2 :]
    if not block or not block.endswith("\n"):
        raise InvalidInput("malformed note: signature block must end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise InvalidInput(f"malformed note: more than {MAX_SIGNATURES} signatures")
    sigs: list[NoteSignature] = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith(_SIG_PREFIX):
            raise InvalidInput(f"malformed note: signature line {number} does not start with '— '")
        name, sep, sig64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep:
            raise InvalidInput(f"malformed note: signature line {number} has no signature")
        try:
            check_key_name(name)
            blob = b64decode_strict(sig64, what="signature")
        except InvalidInput as exc:
            raise InvalidInput(f"malformed note: signature line {number}: {exc}") from None
        if len(blob) < 5:
            raise InvalidInput(f"malformed note: signature line {number} is too short")
        kid = KeyId(int.from_bytes(blob[:4], "big"))
        sigs.append(NoteSignature(name, kid, blob[4:]))
    return body, sigs


def open_note(message: str | bytes, verifiers: Sequence[NoteVerifier]) -> SignedNote:
    """Verify a signed note against trusted keys; raise unless at least one of them signed it.

    Signatures from unknown keys are ignored (the spec requires it: key rotation, witness
    cosignatures). Every signature from a known key must verify, or the note is rejected.
    """
    known: dict[tuple[str, int], NoteVerifier] = {}
    for v in verifiers:
        prev = known.setdefault((v.name, v.key_id), v)
        if prev.public_key != v.public_key:
            raise InvalidInput(f"ambiguous verifiers: two keys named {v.label}")
    if not known:
        raise InvalidInput("open_note needs at least one trusted verifier")
    body, sigs = split_note(message)
    raw = body.encode("utf-8")
    verified: dict[tuple[str, int], NoteSignature] = {}
    for sig in sigs:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        verifier.verify(raw, sig.signature)
        verified.setdefault((sig.name, sig.key_id), sig)
    if not verified:
        expected = ", ".join(sorted(v.label for v in known.values()))
        raise SignatureInvalid(f"note has no signature from a trusted key (expected {expected})")
    return SignedNote(body, tuple(verified.values()))


# --- checkpoints ------------------------------------------------------------------------


def _check_line(value: object, *, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"checkpoint {what} must be a non-empty string")
    if "\n" in value or _CONTROL.search(value):
        raise InvalidInput(f"checkpoint {what} must be one line without control characters")
    _utf8(value, what=f"checkpoint {what}")
    return value


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: origin, size and root hash, plus opaque extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, what="origin")
        size = self.size
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
            raise InvalidInput(f"checkpoint size must be an integer in [0, 2**64), got {size!r}")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise InvalidInput(f"checkpoint root hash must be {HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise InvalidInput("checkpoint extensions must be a tuple of lines")
        for ext in self.extensions:
            _check_line(ext, what="extension line")

    def body(self) -> str:
        """The note text: ``origin\\nsize\\nbase64(root)\\n`` and any extension lines."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_body(cls, text: str) -> Checkpoint:
        """Strictly parse note text. Checks no signature: use :func:`open_checkpoint`."""
        if not isinstance(text, str) or not text.endswith("\n"):
            raise InvalidInput("malformed checkpoint: text must end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise InvalidInput("malformed checkpoint: fewer than three lines")
        origin, size_text, root64, *extensions = lines
        if not origin:
            raise InvalidInput("malformed checkpoint: empty origin line")
        if not _SIZE.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
            raise InvalidInput(
                f"malformed checkpoint: tree size {size_text[:24]!r} is not a canonical "
                "decimal uint64"
            )
        try:
            root = b64decode_strict(root64, what="root hash", size=HASH_SIZE)
        except InvalidInput as exc:
            raise InvalidInput(f"malformed checkpoint: {exc}") from None
        if any(not ext for ext in extensions):
            raise InvalidInput("malformed checkpoint: empty extension line")
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner, *cosigners: NoteSigner) -> str:
    """The signed note for ``checkpoint``; the log's key should be named after its origin."""
    return sign_note(checkpoint.body(), [signer, *cosigners])


def open_checkpoint(
    note: str | bytes, verifier: NoteVerifier, *, origin: str | None = None
) -> Checkpoint:
    """Verify a checkpoint note signed by ``verifier`` and parse it strictly.

    ``origin`` defaults to the verifier's key name (what the spec recommends); pass it when a
    log names its key differently (sum.golang.org signs ``go.sum database tree``).
    """
    opened = open_note(note, [verifier])
    checkpoint = Checkpoint.from_body(opened.text)
    expected = verifier.name if origin is None else origin
    if checkpoint.origin != expected:
        raise ProofInvalid(f"checkpoint is for origin {checkpoint.origin!r}, expected {expected!r}")
    return checkpoint
