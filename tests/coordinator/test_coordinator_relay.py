"""The relay on SQLite and PostgreSQL: who may see and post what, ordering, expiry, limits.

Session bodies go through their wire model first, as the API parses them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from sealroom.coordinator.relay import MAX_MESSAGE, Relay
from sealroom.crypto.keys import Identity, PartyId
from sealroom.errors import Conflict, InvalidInput, NotFound
from sealroom.storage.schema import parties, session_messages, sessions
from sealroom.wire import CreateSessionBody, SessionView, parse_body

NOW = 1_800_000_000
SID = "0123456789abcdef" * 2


def _register(engine: Engine, *names: str) -> list[PartyId]:
    ids = []
    with engine.begin() as conn:
        for name in names:
            ident = Identity.generate()
            conn.execute(
                sa.insert(parties).values(
                    party=ident.party_id,
                    kind="party",
                    name=name,
                    signing_key=ident.public.signing_key,
                    sealing_key=ident.public.sealing_key,
                    registered_at=NOW,
                )
            )
            ids.append(ident.party_id)
    return ids


def _body(a: str, b: str, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "session": SID,
        "protocol": "psi",
        "participants": [{"role": "a", "party": a}, {"role": "b", "party": b}],
        "request": None,
        "expires_in": 600,
    }
    body.update(changes)
    return body


def _create(relay: Relay, body: dict[str, object], *, caller: PartyId, now: int) -> SessionView:
    parsed = parse_body(CreateSessionBody, json.dumps(body).encode(), what="body")
    return relay.create_session(parsed, caller=caller, now=now).view


def _json(view: SessionView) -> dict[str, Any]:
    return view.to_json_dict()


def test_messages_flow_in_order_to_their_recipient_only(engine: Engine) -> None:
    a, b, c = _register(engine, "a", "b", "c")
    relay = Relay(engine=engine)
    view = _create(relay, _body(a, b), caller=a, now=NOW)
    assert _json(view)["participants"] == [
        {"role": "a", "party": a, "active": False},
        {"role": "b", "party": b, "active": False},
    ]
    assert relay.list_sessions(caller=b, now=NOW).sessions == (view,)
    assert relay.list_sessions(caller=c, now=NOW).sessions == ()
    first = relay.post_message(SID, "b", b"one", caller=a, now=NOW).index
    second = relay.post_message(SID, "b", b"two", caller=a, now=NOW).index
    relay.post_message(SID, "a", b"reply", caller=b, now=NOW)
    members = relay.get_session(SID, caller=a, now=NOW).participants
    assert [m.active for m in members] == [True, True]
    assert relay.next_message(SID, after=-1, caller=b, now=NOW) == (first, "a", b"one")
    assert relay.next_message(SID, after=first, caller=b, now=NOW) == (second, "a", b"two")
    assert relay.next_message(SID, after=second, caller=b, now=NOW) is None
    assert relay.next_message(SID, after=-1, caller=a, now=NOW)[1:] == ("b", b"reply")  # type: ignore[index]
    for call in (
        lambda: relay.get_session(SID, caller=c, now=NOW),
        lambda: relay.next_message(SID, after=-1, caller=c, now=NOW),
        lambda: relay.post_message(SID, "a", b"x", caller=c, now=NOW),
    ):
        with pytest.raises(NotFound):
            call()


def test_bad_sessions_are_refused_and_leave_nothing(engine: Engine) -> None:
    a, b = _register(engine, "a", "b")
    relay = Relay(engine=engine)
    stranger = Identity.generate().party_id
    cases: list[tuple[dict[str, object], type[Exception], str]] = [
        (_body(a, b, session="ABC"), InvalidInput, "session"),
        (_body(a, b, protocol=""), InvalidInput, "protocol"),
        (_body(a, b, expires_in=86_401), InvalidInput, "expires_in"),
        (_body(a, b, expires_in="600"), InvalidInput, "expires_in"),
        (_body(a, b, request="sha256:xyz"), InvalidInput, "request"),
        (_body(a, b, participants=[{"role": "a", "party": a}]), InvalidInput, "participants"),
        (_body(a, b, participants="ab"), InvalidInput, "participants"),
        (_body(a, a), InvalidInput, "distinct"),
        (_body(b, stranger), InvalidInput, "caller"),
        (_body(a, stranger), NotFound, "not a registered party"),
        ({**_body(a, b), "extra": 1}, InvalidInput, "unknown field"),
        ({k: v for k, v in _body(a, b).items() if k != "request"}, InvalidInput, "missing"),
        (
            _body(a, b, participants=[{"role": "a", "party": a}, {"role": "b"}]),
            InvalidInput,
            "participants.1.party",
        ),
    ]
    for body, error, match in cases:
        with pytest.raises(error, match=match):
            _create(relay, body, caller=a, now=NOW)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(sessions)) == 0
    _create(relay, _body(a, b), caller=a, now=NOW)
    with pytest.raises(Conflict):
        _create(relay, _body(a, b), caller=b, now=NOW)


def test_bad_messages_are_refused(engine: Engine) -> None:
    a, b = _register(engine, "a", "b")
    relay = Relay(engine=engine)
    _create(relay, _body(a, b), caller=a, now=NOW)
    with pytest.raises(InvalidInput, match="required"):
        relay.post_message(SID, "b", b"", caller=a, now=NOW)
    with pytest.raises(InvalidInput, match="at most"):
        relay.post_message(SID, "b", bytes(MAX_MESSAGE + 1), caller=a, now=NOW)
    with pytest.raises(InvalidInput, match="not another participant"):
        relay.post_message(SID, "a", b"self", caller=a, now=NOW)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(session_messages)) == 0


def test_expired_sessions_vanish_with_their_messages(engine: Engine) -> None:
    a, b = _register(engine, "a", "b")
    relay = Relay(engine=engine)
    _create(relay, _body(a, b, expires_in=60), caller=a, now=NOW)
    relay.post_message(SID, "b", b"hello", caller=a, now=NOW)
    later = NOW + 61
    with pytest.raises(NotFound):
        relay.next_message(SID, after=-1, caller=b, now=later)
    assert relay.list_sessions(caller=a, now=later).sessions == ()
    # The next session created sweeps expired ones, messages included.
    _create(relay, _body(a, b, session="f" * 32), caller=a, now=later)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(session_messages)) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(sessions)) == 1
