"""Party identities: an Ed25519 key for signing and an X25519 key for receiving sealed data.

A party id is a hash of both public keys, so it names the pair: a statement
signed by a party and data sealed to it cannot be split across identities.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import NewType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from sealroom.errors import InvalidInput, SignatureInvalid

__all__ = [
    "Identity",
    "PartyId",
    "PublicIdentity",
    "b64decode_strict",
    "b64encode",
    "fingerprint",
    "matches_fingerprint",
    "party_id_for",
    "verify_ed25519",
]

PartyId = NewType("PartyId", str)

KEY_SIZE = 32
SIGNATURE_SIZE = 64
_PARTY_ID_DOMAIN = b"sealroom-party-id-v1:"
PARTY_ID_PREFIX = "sr1"


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str, *, what: str, size: int | None = None) -> bytes:
    """Decode canonical standard base64 (with padding), or raise :class:`InvalidInput`.

    Canonical means re-encoding gives the same text, so one value has exactly
    one encoding and digests over documents that carry it are stable.
    """
    if not isinstance(text, str):
        raise InvalidInput(f"{what}: expected a base64 string, got {type(text).__name__}")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidInput(f"{what}: not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise InvalidInput(f"{what}: base64 is not in canonical form")
    if size is not None and len(raw) != size:
        raise InvalidInput(f"{what}: expected {size} bytes, got {len(raw)}")
    return raw


def party_id_for(signing_key: bytes, sealing_key: bytes) -> PartyId:
    digest = hashlib.sha256(_PARTY_ID_DOMAIN + signing_key + sealing_key).digest()
    return PartyId(PARTY_ID_PREFIX + base64.b32encode(digest).decode("ascii").rstrip("=").lower())


FINGERPRINT_CHARS = 16
"""Base32 characters of a party id shown as its fingerprint: 80 bits, beyond grinding keys."""


def fingerprint(party: str) -> str:
    """A party id's short fingerprint for people, ``"abcd-efgh-ijkl-mnop"``: the first 80 bits
    of the id's hash, shown next to every display name (names are not identities)."""
    body = party.removeprefix(PARTY_ID_PREFIX)[:FINGERPRINT_CHARS]
    return "-".join(body[i : i + 4] for i in range(0, len(body), 4))


def matches_fingerprint(party: str, given: str) -> bool:
    """``given`` (dashes, spaces and case ignored; a whole party id also works) names ``party``
    with at least the fingerprint's 80 bits."""
    text = "".join(given.split()).replace("-", "").lower()
    if text.startswith(PARTY_ID_PREFIX) and len(text) > FINGERPRINT_CHARS:
        text = text.removeprefix(PARTY_ID_PREFIX)
    body = party.removeprefix(PARTY_ID_PREFIX)
    return len(text) >= FINGERPRINT_CHARS and body[: len(text)] == text  # ids are public


def verify_ed25519(public_key: bytes, signature: bytes, message: bytes, *, what: str) -> None:
    """Verify an Ed25519 signature; raise :class:`SignatureInvalid` naming ``what`` on failure."""
    if len(public_key) != KEY_SIZE:
        raise SignatureInvalid(f"{what}: public key must be {KEY_SIZE} bytes")
    if len(signature) != SIGNATURE_SIZE:
        raise SignatureInvalid(f"{what}: signature must be {SIGNATURE_SIZE} bytes")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise SignatureInvalid(f"{what}: signature does not verify") from exc


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """The public half of a party: what others need to verify it and seal to it."""

    signing_key: bytes
    sealing_key: bytes

    def __post_init__(self) -> None:
        for name in ("signing_key", "sealing_key"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != KEY_SIZE:
                raise InvalidInput(f"{name} must be {KEY_SIZE} bytes")
        try:
            Ed25519PublicKey.from_public_bytes(self.signing_key)
            X25519PublicKey.from_public_bytes(self.sealing_key)
        except ValueError as exc:
            raise InvalidInput("not a valid Ed25519/X25519 public key") from exc

    @property
    def party_id(self) -> PartyId:
        return party_id_for(self.signing_key, self.sealing_key)

    def verify(self, signature: bytes, message: bytes, *, what: str = "signature") -> None:
        verify_ed25519(self.signing_key, signature, message, what=what)

    def x25519(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.sealing_key)


class Identity:
    """A party's private keys. Never serialised except by the keystore."""

    __slots__ = ("_public", "_sealing", "_signing")

    def __init__(self, signing: Ed25519PrivateKey, sealing: X25519PrivateKey) -> None:
        self._signing = signing
        self._sealing = sealing
        self._public = PublicIdentity(
            signing_key=signing.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
            sealing_key=sealing.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
        )

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, signing_seed: bytes, sealing_secret: bytes) -> Identity:
        if len(signing_seed) != KEY_SIZE or len(sealing_secret) != KEY_SIZE:
            raise InvalidInput(f"private keys must be {KEY_SIZE} bytes each")
        return cls(
            Ed25519PrivateKey.from_private_bytes(signing_seed),
            X25519PrivateKey.from_private_bytes(sealing_secret),
        )

    def private_bytes(self) -> tuple[bytes, bytes]:
        """(Ed25519 seed, X25519 secret). For the keystore only."""
        return (
            self._signing.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
            self._sealing.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
        )

    @property
    def public(self) -> PublicIdentity:
        return self._public

    @property
    def party_id(self) -> PartyId:
        return self._public.party_id

    def sign(self, message: bytes) -> bytes:
        return self._signing.sign(message)

    def x25519(self) -> X25519PrivateKey:
        return self._sealing

    def __repr__(self) -> str:
        return f"Identity(party_id={self.party_id!r})"
