"""Parties: self-certifying registration (the party id is derived from the keys) and lookup."""

from __future__ import annotations

from sqlalchemy import select

from sealroom.coordinator.state import State, Stored, party_view, put_party
from sealroom.crypto.keys import PartyId, PublicIdentity
from sealroom.errors import AuthenticationFailed, NotFound
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.storage.schema import parties
from sealroom.wire import PartyView, RegisterPartyBody

__all__ = ["Parties"]


class Parties:
    __slots__ = ("_state",)

    def __init__(self, state: State) -> None:
        self._state = state

    def public_identity(self, party: str) -> PublicIdentity:
        """The registered keys of ``party`` (for request-signature checks)."""
        with read_transaction(self._state.engine) as conn:
            row = conn.execute(
                select(parties.c.signing_key, parties.c.sealing_key, parties.c.kem_key).where(
                    parties.c.party == party
                )
            ).first()
        if row is None:
            raise AuthenticationFailed("unknown party: register with POST /v1/parties first")
        return PublicIdentity(
            signing_key=bytes(row[0]),
            sealing_key=bytes(row[1]),
            kem_key=None if row[2] is None else bytes(row[2]),
        )

    def register(self, body: RegisterPartyBody, *, caller: PartyId, now: int) -> Stored[PartyView]:
        keys = body.keys()
        if keys.party_id != caller:
            raise AuthenticationFailed("a registration must be signed by the key it registers")
        with write_transaction(self._state.engine) as conn:
            return put_party(conn, keys, name=body.name.strip(), kind="party", now=now)

    def get(self, party: str) -> PartyView:
        with read_transaction(self._state.engine) as conn:
            row = conn.execute(select(parties).where(parties.c.party == party)).first()
        if row is None:
            raise NotFound(f"no party {party}")
        return party_view(row)
