"""Signed HTTP requests: who sent this call, when, and is it a replay.

Every mutating call (and every read of a non-public object) carries four
headers. The signature is Ed25519 over a domain-separated string that binds the
method, the exact request target (path and query), the SHA-256 of the body, the
timestamp and a fresh nonce, so a captured call cannot be replayed, retargeted
or given a different body. Freshness (the time window) is checked here; that a
nonce was never seen before is the server's job (:class:`NonceStore`), because
only it has the memory.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from sealroom.crypto.keys import (
    SIGNATURE_SIZE,
    Identity,
    PartyId,
    PublicIdentity,
    b64decode_strict,
    b64encode,
)
from sealroom.errors import AuthenticationFailed, InvalidInput, SignatureInvalid

__all__ = [
    "HEADER_NONCE",
    "HEADER_PARTY",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "MAX_SKEW_SECONDS",
    "NonceStore",
    "SignedRequest",
    "parse_party",
    "sign_request",
    "signed_message",
    "verify_request",
]

HEADER_PARTY = "sealroom-party"
HEADER_TIMESTAMP = "sealroom-timestamp"
HEADER_NONCE = "sealroom-nonce"
HEADER_SIGNATURE = "sealroom-signature"
MAX_SKEW_SECONDS = 300
"""A signed call is accepted for this long either side of the server's clock."""

NONCE_SIZE = 16
_DOMAIN = "sealroom-http-request-v1"
_TIMESTAMP_RE = re.compile(r"^(0|[1-9][0-9]{0,11})$")
_PARTY_RE = re.compile(r"^sr1[a-z2-7]{52}$")


def signed_message(
    *, method: str, target: str, body_sha256: bytes, timestamp: int, nonce: str
) -> bytes:
    """The exact bytes a request signature covers (newline-separated, no ambiguity).

    ``target`` is the path plus query string as sent on the wire
    (``/v1/search?q=tee``); none of the fields can contain a newline.
    """
    for name, value in (("method", method), ("target", target), ("nonce", nonce)):
        if "\n" in value or "\r" in value:
            raise InvalidInput(f"{name} must not contain a line break")
    if len(body_sha256) != 32:
        raise InvalidInput("body_sha256 must be 32 bytes")
    return "\n".join(
        (_DOMAIN, method.upper(), target, body_sha256.hex(), str(timestamp), nonce)
    ).encode("utf-8")


def sign_request(
    identity: Identity,
    *,
    method: str,
    target: str,
    body: bytes,
    now: int,
    random: Callable[[int], bytes] = os.urandom,
) -> dict[str, str]:
    """The headers that authenticate one call by ``identity``."""
    nonce = b64encode(random(NONCE_SIZE))
    message = signed_message(
        method=method,
        target=target,
        body_sha256=hashlib.sha256(body).digest(),
        timestamp=now,
        nonce=nonce,
    )
    return {
        HEADER_PARTY: identity.party_id,
        HEADER_TIMESTAMP: str(now),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: b64encode(identity.sign(message)),
    }


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request whose signature, signer and freshness have been checked."""

    party: PartyId
    timestamp: int
    nonce: str


class NonceStore(Protocol):
    def remember(self, party: PartyId, nonce: str, *, expires_at: int, now: int) -> None:
        """Record ``nonce`` for ``party``; raise :class:`AuthenticationFailed` if already seen."""


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise AuthenticationFailed(f"missing header {name!r}; this call must be signed")
    return value


def parse_party(headers: Mapping[str, str]) -> PartyId:
    """The claimed signer of a request (unverified): to look up its public key."""
    party = _header(headers, HEADER_PARTY)
    if not _PARTY_RE.match(party):
        raise AuthenticationFailed(f"header {HEADER_PARTY!r} is not a party id")
    return PartyId(party)


def verify_request(
    headers: Mapping[str, str],
    *,
    method: str,
    target: str,
    body: bytes,
    signer: PublicIdentity,
    now: int,
    nonces: NonceStore,
) -> SignedRequest:
    """Check a signed call, or raise :class:`AuthenticationFailed` naming what is wrong.

    ``headers`` must be case-insensitive or lower-cased. ``signer`` is the
    registered key of the party the headers claim; the caller looks it up.
    The nonce is remembered only after the signature verifies, so nobody can
    burn another party's nonces.
    """
    party = parse_party(headers)
    if party != signer.party_id:
        raise AuthenticationFailed("the signing key does not belong to the claimed party")
    raw_ts = _header(headers, HEADER_TIMESTAMP)
    if not _TIMESTAMP_RE.match(raw_ts):
        raise AuthenticationFailed(f"header {HEADER_TIMESTAMP!r} must be unix seconds")
    timestamp = int(raw_ts)
    if abs(now - timestamp) > MAX_SKEW_SECONDS:
        raise AuthenticationFailed(
            f"stale request: timestamp is {now - timestamp:+d} s from the server's clock "
            f"(allowed: +-{MAX_SKEW_SECONDS} s)"
        )
    nonce = _header(headers, HEADER_NONCE)
    try:
        b64decode_strict(nonce, what=HEADER_NONCE, size=NONCE_SIZE)
        signature = b64decode_strict(
            _header(headers, HEADER_SIGNATURE), what=HEADER_SIGNATURE, size=SIGNATURE_SIZE
        )
    except InvalidInput as exc:
        raise AuthenticationFailed(exc.detail) from None
    message = signed_message(
        method=method,
        target=target,
        body_sha256=hashlib.sha256(body).digest(),
        timestamp=timestamp,
        nonce=nonce,
    )
    try:
        signer.verify(signature, message, what="request signature")
    except SignatureInvalid:
        raise AuthenticationFailed(
            "request signature does not verify (wrong key, or the method, target or body changed)"
        ) from None
    nonces.remember(party, nonce, expires_at=timestamp + MAX_SKEW_SECONDS, now=now)
    return SignedRequest(party=party, timestamp=timestamp, nonce=nonce)
