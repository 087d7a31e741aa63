"""Party identities: an Ed25519 key for signing, an X25519 key and (new) a hybrid KEM key for sealing.

A party id is a hash of its public keys, so it names them all: a statement
signed by a party and data sealed to it cannot be split across identities,
and nobody who relays a party's keys (the coordinator) can strip or swap its
post-quantum key without changing the id.

New identities carry an X-Wing key (ML-KEM-768 + X25519, the HPKE KEM
``MLKEM768-X25519``, id 0x647A: draft-connolly-cfrg-xwing-kem-06, identical to
MLKEM768-X25519 of draft-irtf-cfrg-concrete-hybrid-kems and draft-ietf-hpke-pq),
so data sealed to them stays confidential against an adversary who records it
now and has a quantum computer later. Its private key is the spec's 32-byte
seed; its X25519 half is its own, not the party's classical sealing key (no
key is used by two KEMs). Their ids hash all three keys under a new domain
(``sealroom-party-id-v2:``). Identities without it (every identity made before
suite 2) keep their ids and receive X25519-only seals; a party gets the
post-quantum key by creating a new identity, because adding a key to an old
one would change its id and orphan what it signed.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from typing import NewType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem
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
    "KEM_PUBLIC_KEY_SIZE",
    "KEM_SEED_SIZE",
    "Identity",
    "PartyId",
    "PublicIdentity",
    "b64decode_strict",
    "b64encode",
    "party_id_for",
    "verify_ed25519",
    "xwing_private_key",
    "xwing_public_key",
]

PartyId = NewType("PartyId", str)

KEY_SIZE = 32
SIGNATURE_SIZE = 64
# X-Wing: the encapsulation key is ML-KEM-768's (1184 bytes) || X25519's (32).
_MLKEM768_PUBLIC_SIZE = 1184
KEM_PUBLIC_KEY_SIZE = _MLKEM768_PUBLIC_SIZE + KEY_SIZE
KEM_SEED_SIZE = 32
_PARTY_ID_DOMAIN = b"sealroom-party-id-v1:"
_PARTY_ID_DOMAIN_V2 = b"sealroom-party-id-v2:"
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


def party_id_for(signing_key: bytes, sealing_key: bytes, kem_key: bytes | None = None) -> PartyId:
    """The id naming these keys; an identity with a hybrid KEM key hashes it too (domain v2)."""
    if kem_key is None:
        digest = hashlib.sha256(_PARTY_ID_DOMAIN + signing_key + sealing_key).digest()
    else:
        digest = hashlib.sha256(_PARTY_ID_DOMAIN_V2 + signing_key + sealing_key + kem_key).digest()
    return PartyId(PARTY_ID_PREFIX + base64.b32encode(digest).decode("ascii").rstrip("=").lower())


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


def xwing_public_key(kem_key: bytes) -> hpke.MLKEM768X25519PublicKey:
    """Parse an X-Wing encapsulation key (ML-KEM-768 key || X25519 key); raise :class:`InvalidInput`."""
    if not isinstance(kem_key, bytes) or len(kem_key) != KEM_PUBLIC_KEY_SIZE:
        raise InvalidInput(f"kem_key must be {KEM_PUBLIC_KEY_SIZE} bytes (an X-Wing public key)")
    try:
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(kem_key[:_MLKEM768_PUBLIC_SIZE]),
            X25519PublicKey.from_public_bytes(kem_key[_MLKEM768_PUBLIC_SIZE:]),
        )
    except ValueError as exc:
        raise InvalidInput("kem_key is not a valid ML-KEM-768 + X25519 public key") from exc


def xwing_private_key(seed: bytes) -> tuple[hpke.MLKEM768X25519PrivateKey, bytes]:
    """The X-Wing key pair of a 32-byte seed: (private key, public key bytes).

    Expansion as in draft-connolly-cfrg-xwing-kem-06 section 5.2: SHAKE256(seed, 96)
    gives the ML-KEM-768 seed (d || z, 64 bytes) and the X25519 secret (32 bytes).
    The published vectors (tests/vectors/hpke-pq/) check it.
    """
    if not isinstance(seed, bytes) or len(seed) != KEM_SEED_SIZE:
        raise InvalidInput(f"the KEM seed must be {KEM_SEED_SIZE} bytes")
    expanded = hashlib.shake_256(seed).digest(96)
    ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
    x = X25519PrivateKey.from_private_bytes(expanded[64:])
    public = ml.public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw
    ) + x.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hpke.MLKEM768X25519PrivateKey(ml, x), public


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """The public half of a party: what others need to verify it and seal to it.

    ``kem_key`` is the X-Wing public key of a post-quantum identity, or
    ``None`` for an identity made before suite 2 (it receives X25519-only seals).
    """

    signing_key: bytes
    sealing_key: bytes
    kem_key: bytes | None = None

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
        if self.kem_key is not None:
            xwing_public_key(self.kem_key)

    @property
    def party_id(self) -> PartyId:
        return party_id_for(self.signing_key, self.sealing_key, self.kem_key)

    @property
    def post_quantum(self) -> bool:
        """Whether data sealed to this party uses the hybrid post-quantum suite."""
        return self.kem_key is not None

    def hybrid_kem(self) -> hpke.MLKEM768X25519PublicKey:
        if self.kem_key is None:
            raise InvalidInput(f"party {self.party_id} has no post-quantum (X-Wing) key")
        return xwing_public_key(self.kem_key)

    def verify(self, signature: bytes, message: bytes, *, what: str = "signature") -> None:
        verify_ed25519(self.signing_key, signature, message, what=what)

    def x25519(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.sealing_key)


class Identity:
    """A party's private keys. Never serialised except by the keystore."""

    __slots__ = ("_kem", "_kem_seed", "_public", "_sealing", "_signing")

    def __init__(
        self,
        signing: Ed25519PrivateKey,
        sealing: X25519PrivateKey,
        kem_seed: bytes | None = None,
    ) -> None:
        self._signing = signing
        self._sealing = sealing
        self._kem_seed = kem_seed
        kem_public: bytes | None = None
        self._kem: hpke.MLKEM768X25519PrivateKey | None = None
        if kem_seed is not None:
            self._kem, kem_public = xwing_private_key(kem_seed)
        self._public = PublicIdentity(
            signing_key=signing.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
            sealing_key=sealing.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
            kem_key=kem_public,
        )

    @classmethod
    def generate(cls, *, post_quantum: bool = True) -> Identity:
        """A fresh identity; with an X-Wing key unless ``post_quantum=False`` (a legacy identity)."""
        return cls(
            Ed25519PrivateKey.generate(),
            X25519PrivateKey.generate(),
            os.urandom(KEM_SEED_SIZE) if post_quantum else None,
        )

    @classmethod
    def from_private_bytes(
        cls, signing_seed: bytes, sealing_secret: bytes, kem_seed: bytes | None = None
    ) -> Identity:
        if len(signing_seed) != KEY_SIZE or len(sealing_secret) != KEY_SIZE:
            raise InvalidInput(f"private keys must be {KEY_SIZE} bytes each")
        return cls(
            Ed25519PrivateKey.from_private_bytes(signing_seed),
            X25519PrivateKey.from_private_bytes(sealing_secret),
            kem_seed,
        )

    def private_bytes(self) -> tuple[bytes, bytes]:
        """(Ed25519 seed, X25519 secret). For the keystore only."""
        return (
            self._signing.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
            self._sealing.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
        )

    def kem_seed(self) -> bytes | None:
        """The X-Wing seed, or ``None`` for a legacy identity. For the keystore only."""
        return self._kem_seed

    def hybrid_kem(self) -> hpke.MLKEM768X25519PrivateKey:
        if self._kem is None:
            raise InvalidInput(f"identity {self.party_id} has no post-quantum (X-Wing) key")
        return self._kem

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
