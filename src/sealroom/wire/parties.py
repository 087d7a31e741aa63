"""Parties: registration and the registered view."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sealroom.crypto.keys import KEM_PUBLIC_KEY_SIZE, PublicIdentity, b64decode_strict
from sealroom.wire.base import WireModel
from sealroom.wire.fields import KemKey, Key32, Name, PartyIdStr

__all__ = ["PartyView", "RegisterPartyBody", "party_keys"]


def party_keys(signing_key: str, sealing_key: str, kem_key: str | None) -> PublicIdentity:
    """A party's keys from their base64 forms (a registration, or a served party view)."""
    return PublicIdentity(
        signing_key=b64decode_strict(signing_key, what="signing_key", size=32),
        sealing_key=b64decode_strict(sealing_key, what="sealing_key", size=32),
        kem_key=(
            None
            if kem_key is None
            else b64decode_strict(kem_key, what="kem_key", size=KEM_PUBLIC_KEY_SIZE)
        ),
    )


class RegisterPartyBody(WireModel):
    """Self-certifying: the call must be signed by the keys it registers."""

    name: Name
    signing_key: Key32 = Field(description="Ed25519 public key; it must sign this call.")
    sealing_key: Key32 = Field(description="X25519 public key.")
    kem_key: KemKey | None = Field(
        default=None,
        description=(
            "X-Wing (ML-KEM-768 + X25519) public key of a post-quantum identity; "
            "the party id hashes it. Absent for identities made before suite 2."
        ),
    )

    def keys(self) -> PublicIdentity:
        return party_keys(self.signing_key, self.sealing_key, self.kem_key)


class PartyView(WireModel):
    party: PartyIdStr
    name: str
    signing_key: str
    sealing_key: str
    kem_key: str | None = None
    kind: Literal["party", "enclave"]
    registered_at: int
