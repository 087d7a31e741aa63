"""Running a protocol between parties over the coordinator's relay.

Every message is sealed to the recipient's X25519 key (HPKE, the same
construction as data: :mod:`sealroom.crypto.sealing`) and signed by the
sender's Ed25519 key over the session, both roles and the ciphertext, so the
coordinator only ever holds ciphertext it can neither read nor forge. It can
still drop, delay, reorder or replay what it holds; the channel on top
(:mod:`sealroom.protocols.channel`) turns any of that into a protocol error
on every side.

Peers' keys come from the coordinator but are bound to party ids by hash
(``party_id_for``), and the party ids a user trusts come from signed
statements or the command line, so the coordinator cannot swap a key.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sealroom.client.http import Client
from sealroom.crypto.keys import Identity, PartyId, PublicIdentity
from sealroom.crypto.sealing import SealContext, open_sealed, seal
from sealroom.errors import (
    DecryptionFailed,
    InvalidInput,
    NotFound,
    ProtocolError,
    SignatureInvalid,
)
from sealroom.protocols.channel import DEFAULT_TIMEOUT, Channel
from sealroom.statements import ProtocolParticipant
from sealroom.wire import SessionView
from sealroom.wire.parties import party_keys

__all__ = ["RelayTransport", "Session", "channel_for", "join_session", "open_session"]

_DOMAIN = b"sealroom-relay-v1\0"
_SIG = 64
#: The longest single wait asked of the coordinator (its limit is MAX_WAIT, 20 s).
LONG_POLL = 15.0


@dataclass(frozen=True)
class Session:
    """A relay session whose participants' keys this client has checked."""

    id: str
    protocol: str
    request: str | None
    me: str
    roles: tuple[str, ...]
    parties: Mapping[str, PublicIdentity]

    def participants(
        self, inputs: Mapping[str, Sequence[str]] | None = None
    ) -> tuple[ProtocolParticipant, ...]:
        inputs = inputs or {}
        return tuple(
            ProtocolParticipant(
                role=r, party=self.parties[r].party_id, inputs=tuple(inputs.get(r, ()))
            )
            for r in self.roles
        )

    def role_of(self, party: str) -> str:
        for role, identity in self.parties.items():
            if identity.party_id == party:
                return role
        raise InvalidInput(f"{party} does not take part in session {self.id}")


def open_session(
    client: Client,
    *,
    protocol: str,
    roles: Sequence[tuple[str, str]],
    request: str | None = None,
    expires_in: int = 3600,
    wait: float = 0.0,
) -> Session:
    """Create a session with a fresh random id; ``roles`` pairs each role with a party id.

    With ``wait``, a peer that has not registered yet is waited for that long.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            view = client.create_session(
                os.urandom(16).hex(),
                protocol=protocol,
                participants=roles,
                request=request,
                expires_in=expires_in,
            )
            return _checked(client, view, protocol=protocol, expect=[p for _, p in roles])
        except NotFound:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def join_session(
    client: Client,
    *,
    protocol: str,
    session: str | None = None,
    expect: Sequence[str] = (),
    wait: float = 60.0,
    request: str | None = None,
) -> Session:
    """Join ``session`` (or wait for the newest ``protocol`` session that invites this party
    and runs ``request``: None, a session under no request)."""
    me = client.identity
    if me is None:
        raise InvalidInput("joining a session needs a keystore")
    deadline = time.monotonic() + wait
    while True:
        if session is not None:
            try:
                view: SessionView | None = client.session(session)
            except NotFound:
                view = None
        else:
            views = [
                v
                for v in client.sessions()
                if v.protocol == protocol
                and v.created_by != me.party_id
                and not any(p.active for p in v.participants if p.party == me.party_id)
                # A session without every expected peer is someone else's invitation: skip it
                # (and keep waiting for the expected one) rather than fail on it.
                and set(expect) <= {p.party for p in v.participants}
                and v.request == request  # a run under a request is joined by naming it
            ]
            view = views[0] if views else None
        if view is not None:
            if request is not None and view.request != request:
                raise ProtocolError(f"session {view.session} does not run request {request}")
            return _checked(client, view, protocol=protocol, expect=expect)
        if time.monotonic() >= deadline:
            what = f"session {session}" if session else f"a {protocol} session for this party"
            if expect and session is None:
                what += " with " + ", ".join(expect)
            raise NotFound(f"no {what} within {wait:.0f} s")
        time.sleep(0.2)


def _checked(client: Client, view: SessionView, *, protocol: str, expect: Sequence[str]) -> Session:
    me = client.identity
    if me is None:
        raise InvalidInput("a protocol session needs a keystore")
    if view.protocol != protocol:
        raise ProtocolError(f"session {view.session} runs {view.protocol}, not {protocol}")
    parties: dict[str, PublicIdentity] = {}
    for p in view.participants:
        info = client.party(p.party)
        identity = party_keys(info.signing_key, info.sealing_key, info.kem_key)
        if identity.party_id != p.party:
            raise SignatureInvalid(f"the coordinator's keys for {p.party} do not match its id")
        parties[p.role] = identity
    ids = {i.party_id for i in parties.values()}
    missing = [p for p in (*expect, me.party_id) if p not in ids]
    if missing:
        raise ProtocolError(f"session {view.session} does not include {missing[0]}")
    mine = next(r for r, i in parties.items() if i.party_id == me.party_id)
    return Session(
        id=view.session,
        protocol=view.protocol,
        request=view.request,
        me=mine,
        roles=tuple(p.role for p in view.participants),
        parties=parties,
    )


class RelayTransport:
    """Seals, signs and posts each message; waits for, verifies and opens what arrives.

    ``push`` (the default): each wait is one signed long-poll request that the coordinator
    answers as soon as a message arrives. ``push=False`` polls with backoff instead (for
    coordinators older than long polling, and as the benchmark's baseline).
    """

    def __init__(
        self,
        client: Client,
        session: Session,
        identity: Identity,
        *,
        max_interval: float = 0.05,
        push: bool = True,
    ) -> None:
        if session.parties[session.me].party_id != identity.party_id:
            raise InvalidInput("the identity does not hold this session's role")
        self._client = client
        self._session = session
        self._identity = identity
        self._after = -1
        self._max_interval = max_interval
        self._push = push
        self._ad = hashlib.sha256(_DOMAIN + session.id.encode()).digest()

    def _context(self, recipient: PartyId) -> SealContext:
        return SealContext(
            request_digest=self._ad,
            recipient=recipient,
            purpose=f"protocol/{self._session.protocol}",
        )

    def _signed(self, sender: str, recipient: str, sealed: bytes) -> bytes:
        s = self._session
        return b"".join(
            [
                _DOMAIN,
                s.id.encode(),
                b"\0",
                sender.encode(),
                b"\0",
                recipient.encode(),
                b"\0",
                sealed,
            ]
        )

    def send(self, recipient: str, data: bytes) -> None:
        peer = self._session.parties.get(recipient)
        if peer is None or recipient == self._session.me:
            raise ProtocolError(f"{recipient!r} is not a peer in this session")
        sealed = seal(data, peer, self._context(peer.party_id))
        signature = self._identity.sign(self._signed(self._session.me, recipient, sealed))
        self._client.post_message(self._session.id, recipient, signature + sealed)

    def receive(self, timeout: float) -> tuple[str, bytes] | None:
        deadline = time.monotonic() + timeout
        interval = 0.002
        while True:
            remaining = deadline - time.monotonic()
            wait = min(remaining, LONG_POLL) if self._push else 0.0
            asked = time.monotonic()
            got = self._client.next_message(self._session.id, after=self._after, wait=wait)
            if got is not None:
                index, sender, body = got
                self._after = index
                return sender, self._open(sender, body)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if wait > 0 and time.monotonic() - asked >= wait / 2:
                continue  # the coordinator held the request: ask again at once
            # Polling, or a coordinator that does not hold requests: back off.
            time.sleep(min(interval, remaining))
            interval = min(interval * 2, self._max_interval)

    def _open(self, sender: str, body: bytes) -> bytes:
        peer = self._session.parties.get(sender)
        if peer is None or sender == self._session.me:
            raise ProtocolError(f"the relay delivered a message from {sender!r}, not a peer")
        if len(body) <= _SIG:
            raise ProtocolError(f"a relayed message from {sender} is truncated")
        signature, sealed = body[:_SIG], body[_SIG:]
        try:
            peer.verify(signature, self._signed(sender, self._session.me, sealed))
            return open_sealed(sealed, self._identity, self._context(self._identity.party_id))
        except (SignatureInvalid, DecryptionFailed) as exc:
            raise ProtocolError(
                f"a relayed message from {sender} does not verify: {exc.detail}"
            ) from None


def channel_for(
    client: Client,
    session: Session,
    *,
    version: int,
    peers: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    push: bool = True,
) -> Channel:
    """This party's channel in ``session`` (``peers``: the roles it talks to; default all others)."""
    identity = client.identity
    if identity is None:
        raise InvalidInput("a protocol session needs a keystore")
    return Channel(
        transport=RelayTransport(client, session, identity, push=push),
        protocol=session.protocol,
        version=version,
        session=session.id,
        me=session.me,
        peers=[r for r in session.roles if r != session.me] if peers is None else peers,
        timeout=timeout,
    )
