"""Wrapped results: a sealed result the recipient can open only with a key released later.

This is the format half of the enclave's commit-then-reveal protocol
(:mod:`sealroom.enclave.release` states the protocol): the enclave posts each
recipient's sealed result wrapped under a release key ``K``, and releases ``K``
(sealed to the recipient) only once it has proved its budget charges are in
the log. Until then the coordinator, and a requester colluding with it, hold
ciphertext under a key nobody outside the enclave has.

Wrapped bytes: ``MAGIC || nonce (12) || AES-256-GCM_K(sealed, aad)``, with
``aad = DOMAIN || request || 0 || recipient``, so a wrapped result cannot be
moved to another request or recipient.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sealroom.errors import DecryptionFailed, InvalidInput

__all__ = [
    "KEY_SIZE",
    "MAGIC",
    "RELEASE_PURPOSE",
    "derive_release_key",
    "is_wrapped",
    "unwrap",
    "wrap",
]

MAGIC = b"SRW1"
#: The seal context purpose of a release key sealed to its recipient.
RELEASE_PURPOSE = "release-key"
KEY_SIZE = 32
_NONCE = 12
_DOMAIN = b"sealroom-release-v1\0"


def _aad(request: str, recipient: str) -> bytes:
    return _DOMAIN + request.encode() + b"\0" + recipient.encode()


def derive_release_key(secret: bytes, *, request: str, recipient: str) -> bytes:
    """The release key of (``request``, ``recipient``) under an enclave-held ``secret``.

    Deterministic, so every worker holding the deployment's keys derives the same key
    and a worker that crashed before releasing leaves nothing another cannot finish.
    """
    if len(secret) < KEY_SIZE:
        raise InvalidInput("a release secret must be at least 32 bytes")
    kdf = HKDF(
        algorithm=hashes.SHA256(), length=KEY_SIZE, salt=_DOMAIN, info=_aad(request, recipient)
    )
    return kdf.derive(secret)


def wrap(sealed: bytes, key: bytes, *, request: str, recipient: str) -> bytes:
    """``sealed`` (a result already sealed to the recipient) under the release ``key``."""
    if len(key) != KEY_SIZE:
        raise InvalidInput("a release key is 32 bytes")
    nonce = os.urandom(_NONCE)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, sealed, _aad(request, recipient))


def is_wrapped(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC


def unwrap(data: bytes, key: bytes, *, request: str, recipient: str) -> bytes:
    """The sealed result inside ``data``; raises unless ``key`` and the binding authenticate."""
    if not is_wrapped(data) or len(data) < len(MAGIC) + _NONCE + 16:
        raise DecryptionFailed("not a wrapped result")
    if len(key) != KEY_SIZE:
        raise DecryptionFailed("the released key is not 32 bytes")
    nonce = data[len(MAGIC) : len(MAGIC) + _NONCE]
    try:
        return AESGCM(key).decrypt(nonce, data[len(MAGIC) + _NONCE :], _aad(request, recipient))
    except InvalidTag:
        raise DecryptionFailed(
            "the wrapped result does not open with the released key (wrong key, request or "
            "recipient, or tampered)"
        ) from None
