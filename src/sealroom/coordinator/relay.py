"""The relay for protocols run directly between parties (PSI, PJC, secure aggregation, HE).

The coordinator is a mailbox here, nothing more: a session names a protocol
and its participants (role -> registered party), and each message is stored
as the opaque bytes its sender posted, for one recipient. Clients seal every
message to the recipient's key and sign it (:mod:`sealroom.client.relay`), so
the coordinator learns who takes part, the protocol's name, message sizes and
timing, and nothing else; it cannot read, forge, reorder or replay a message
without the recipient's channel noticing.

Delivery is pushed: a reader may wait (``next_message`` with a ``wait`` of up to
:data:`MAX_WAIT` seconds, one signed request each time) and its request answers
as soon as a message for it is stored, on this replica or another one on the
same PostgreSQL database (:class:`sealroom.storage.notify.Signals`: an
in-process wake-up, fanned out across replicas by LISTEN/NOTIFY, which goes out
only when the message's transaction commits). A wake-up carries nothing but
"look again": the waiter reads the database, with the same authorization as
any read, so a lost or forged notification can only delay or wake it early.

A participant is ``active`` once it has posted a message, so a client joining
"the newest session" skips runs it already took part in.

A session naming a request is a protocol run under that request: the relay admits it only
as :func:`sealroom.coordinator.protocol_runs.start_session` allows (the requester, an
approved run, exactly its participants, once).

Authorization: only participants see a session (others get 404); a party can
post only as its own role and read only its own inbox. Sessions expire
(at most a day) and their messages are deleted with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, delete, func, insert, select

from sealroom.coordinator.protocol_runs import start_session
from sealroom.coordinator.state import Stored
from sealroom.crypto.keys import PartyId
from sealroom.errors import Conflict, InvalidInput, NotFound
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.storage.notify import Signals, Watch
from sealroom.storage.schema import parties, session_messages, session_participants, sessions
from sealroom.wire import (
    CreateSessionBody,
    MessagePosted,
    SessionList,
    SessionParticipant,
    SessionView,
)
from sealroom.wire.relay import MAX_PARTICIPANTS, MAX_SESSION_SECONDS

__all__ = ["MAX_MESSAGE", "MAX_PARTICIPANTS", "MAX_SESSION_SECONDS", "MAX_WAIT", "Relay"]

MAX_MESSAGE = 64 << 20
#: The longest a reader's request waits for a message (s): below every client's and
#: proxy's usual idle timeout, and short enough that each wait is freshly authenticated.
MAX_WAIT = 20.0
MAX_MESSAGES_PER_SESSION = 1_000_000


class Relay:
    __slots__ = ("_engine", "_signals")

    def __init__(self, *, engine: Engine, signals: Signals | None = None) -> None:
        self._engine = engine
        self._signals = signals or Signals(engine)

    @property
    def signals(self) -> Signals:
        return self._signals

    @contextmanager
    def watch(self, session: str, *, caller: PartyId) -> Iterator[Watch]:
        """Wake-ups for messages to ``caller`` in ``session``; register before reading."""
        with self._signals.watch(_key(session, caller)) as w:
            yield w

    def create_session(
        self, body: CreateSessionBody, *, caller: PartyId, now: int
    ) -> Stored[SessionView]:
        roles = [(m.role, m.party) for m in body.participants]
        if len({r for r, _ in roles}) != len(roles) or len({p for _, p in roles}) != len(roles):
            raise InvalidInput("participants must have distinct roles and distinct parties")
        if caller not in {p for _, p in roles}:
            raise InvalidInput("the caller must be one of the participants")
        session = body.session
        with write_transaction(self._engine) as conn:
            self._sweep(conn, now)
            known = set(
                conn.scalars(
                    select(parties.c.party).where(parties.c.party.in_([p for _, p in roles]))
                )
            )
            unknown = [p for _, p in roles if p not in known]
            if unknown:
                raise NotFound(f"participant {unknown[0]} is not a registered party")
            if conn.scalar(select(sessions.c.session).where(sessions.c.session == session)):
                raise Conflict(f"session {session} already exists; pick a fresh random id")
            if body.request is not None:  # a protocol run under an approved request
                start_session(conn, body, caller=caller, now=now)
            conn.execute(
                insert(sessions).values(
                    session=session,
                    protocol=body.protocol,
                    request=body.request,
                    created_by=caller,
                    created_at=now,
                    expires_at=now + body.expires_in,
                )
            )
            conn.execute(
                insert(session_participants),
                [
                    {"session": session, "role": r, "party": p, "position": i}
                    for i, (r, p) in enumerate(roles)
                ],
            )
            return Stored(view=self._view(conn, session), created=True)

    def list_sessions(self, *, caller: PartyId, now: int) -> SessionList:
        with read_transaction(self._engine) as conn:
            ids = conn.scalars(
                select(sessions.c.session)
                .join(session_participants, session_participants.c.session == sessions.c.session)
                .where(session_participants.c.party == caller, sessions.c.expires_at > now)
                .order_by(sessions.c.created_at.desc(), sessions.c.session)
                .limit(100)
            ).all()
            return SessionList(sessions=tuple(self._view(conn, s) for s in ids))

    def get_session(self, session: str, *, caller: PartyId, now: int) -> SessionView:
        with read_transaction(self._engine) as conn:
            self._role(conn, session, caller, now)
            return self._view(conn, session)

    def post_message(
        self, session: str, recipient: str, body: bytes, *, caller: PartyId, now: int
    ) -> MessagePosted:
        if not body:
            raise InvalidInput("a message body is required")
        if len(body) > MAX_MESSAGE:
            raise InvalidInput(f"a message may be at most {MAX_MESSAGE} bytes")
        with write_transaction(self._engine) as conn:
            sender = self._role(conn, session, caller, now)
            roles = set(
                conn.scalars(
                    select(session_participants.c.role).where(
                        session_participants.c.session == session
                    )
                )
            )
            if recipient not in roles or recipient == sender:
                raise InvalidInput(f"{recipient!r} is not another participant of this session")
            count = conn.scalar(
                select(func.count())
                .select_from(session_messages)
                .where(session_messages.c.session == session)
            )
            if (count or 0) >= MAX_MESSAGES_PER_SESSION:
                raise Conflict("this session has reached its message limit")
            result = conn.execute(
                insert(session_messages).values(
                    session=session, sender=sender, recipient=recipient, body=body, created_at=now
                )
            )
            key = result.inserted_primary_key
            assert key is not None  # an INSERT always has one
            to = conn.scalar(
                select(session_participants.c.party).where(
                    session_participants.c.session == session,
                    session_participants.c.role == recipient,
                )
            )
            wake = _key(session, PartyId(str(to)))
            self._signals.publish(conn, wake)
        # Committed: wake this replica's waiters (others hear the NOTIFY sent at commit).
        self._signals.wake(wake)
        return MessagePosted(index=int(key[0]))

    def next_message(
        self, session: str, *, after: int, caller: PartyId, now: int
    ) -> tuple[int, str, bytes] | None:
        """The caller's first message with an index above ``after``: (index, sender role, body)."""
        with read_transaction(self._engine) as conn:
            me = self._role(conn, session, caller, now)
            row = conn.execute(
                select(session_messages.c.id, session_messages.c.sender, session_messages.c.body)
                .where(
                    session_messages.c.session == session,
                    session_messages.c.recipient == me,
                    session_messages.c.id > after,
                )
                .order_by(session_messages.c.id)
                .limit(1)
            ).first()
            return None if row is None else (int(row.id), row.sender, bytes(row.body))

    def _role(self, conn: Connection, session: str, caller: PartyId, now: int) -> str:
        row = conn.execute(
            select(session_participants.c.role)
            .join(sessions, sessions.c.session == session_participants.c.session)
            .where(
                session_participants.c.session == session,
                session_participants.c.party == caller,
                sessions.c.expires_at > now,
            )
        ).first()
        if row is None:
            raise NotFound(f"session {session} not found")
        return str(row.role)

    def _view(self, conn: Connection, session: str) -> SessionView:
        row = conn.execute(select(sessions).where(sessions.c.session == session)).one()
        members = conn.execute(
            select(session_participants.c.role, session_participants.c.party)
            .where(session_participants.c.session == session)
            .order_by(session_participants.c.position)
        ).all()
        active = set(
            conn.scalars(
                select(session_messages.c.sender)
                .where(session_messages.c.session == session)
                .distinct()
            )
        )
        return SessionView(
            session=row.session,
            protocol=row.protocol,
            request=row.request,
            created_by=row.created_by,
            created_at=row.created_at,
            expires_at=row.expires_at,
            participants=tuple(
                SessionParticipant(role=m.role, party=m.party, active=m.role in active)
                for m in members
            ),
        )

    @staticmethod
    def _sweep(conn: Connection, now: int) -> None:
        expired = select(sessions.c.session).where(sessions.c.expires_at <= now)
        conn.execute(delete(session_messages).where(session_messages.c.session.in_(expired)))
        conn.execute(
            delete(session_participants).where(session_participants.c.session.in_(expired))
        )
        conn.execute(delete(sessions).where(sessions.c.expires_at <= now))


def _key(session: str, party: PartyId) -> str:
    return f"relay/{session}/{party}"
