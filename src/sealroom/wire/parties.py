"""Parties: registration and the registered view."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sealroom.crypto.keys import PublicIdentity, b64decode_strict
from sealroom.wire.base import WireModel
from sealroom.wire.fields import Key32, Name, PartyIdStr

__all__ = ["PartyView", "RegisterPartyBody"]


class RegisterPartyBody(WireModel):
    """Self-certifying: the call must be signed by the keys it registers."""

    name: Name
    signing_key: Key32 = Field(description="Ed25519 public key; it must sign this call.")
    sealing_key: Key32 = Field(description="X25519 public key.")

    def keys(self) -> PublicIdentity:
        return PublicIdentity(
            signing_key=b64decode_strict(self.signing_key, what="signing_key", size=32),
            sealing_key=b64decode_strict(self.sealing_key, what="sealing_key", size=32),
        )


class PartyView(WireModel):
    party: PartyIdStr
    name: str
    fingerprint: str = Field(
        description="The party id's short fingerprint (80 bits): show it next to the name."
    )
    signing_key: str
    sealing_key: str
    kind: Literal["party", "enclave"]
    registered_at: int
