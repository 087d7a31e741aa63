"""Protocols over the coordinator's relay: a real server, sealed and signed messages, and a
coordinator that tampers, reroutes or leaks gets caught."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from sealroom.client.http import Client
from sealroom.client.relay import channel_for, join_session, open_session
from sealroom.errors import Conflict, InvalidInput, NotFound, ProtocolError
from sealroom.protocols.channel import Channel, run_local
from tests.client.client_world import party
from tests.services import coordinator


def _clients(url: str, tmp_path: Path, *names: str) -> list[Client]:
    out = []
    for name in names:
        _, identity = party(tmp_path, name)
        c = Client(base_url=url, identity=identity)
        c.register_party(name)
        out.append(c)
    return out


def _exchange(a: Channel, b: Channel, rounds: int = 3) -> dict[str, object]:
    def run_a() -> int:
        with a.guard():
            total = 0
            for i in range(rounds):
                a.send(b.me, "ping", fields={"i": i}, blobs={"pad": bytes(1000)})
                total += a.expect(b.me, "pong").int_field("i", lo=0, hi=100)
            return total

    def run_b() -> int:
        with b.guard():
            for _ in range(rounds):
                i = b.expect(a.me, "ping").int_field("i", lo=0, hi=100)
                b.send(a.me, "pong", fields={"i": i + 10})
            return 0

    return run_local({"a": run_a, "b": run_b}, timeout=60)


def test_two_parties_run_over_the_relay_and_others_see_nothing(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        alice, bob, mallory = _clients(url, tmp_path, "alice", "bob", "mallory")
        assert alice.identity
        assert bob.identity
        assert mallory.identity
        s_a = open_session(
            alice,
            protocol="psi",
            roles=[("a", alice.identity.party_id), ("b", bob.identity.party_id)],
        )
        s_b = join_session(bob, protocol="psi", expect=[alice.identity.party_id], wait=5)
        assert (s_a.id, s_b.me) == (s_b.id, "b")
        a = channel_for(alice, s_a, version=1, timeout=20)
        b = channel_for(bob, s_b, version=1, timeout=20)
        assert _exchange(a, b) == {"a": 0 + 1 + 2 + 3 * 10, "b": 0}
        assert a.transcript() == b.transcript()

        with pytest.raises(NotFound):
            mallory.session(s_a.id)
        with pytest.raises(NotFound):
            mallory.next_message(s_a.id, after=-1)
        with pytest.raises(NotFound):
            mallory.post_message(s_a.id, "a", b"x" * 100)
        assert mallory.sessions() == ()

        # What the coordinator holds is ciphertext: no trace of the frames' plaintext.
        db = sqlite3.connect(tmp_path / "coordinator.db")
        bodies = [bytes(r[0]) for r in db.execute("SELECT body FROM session_messages")]
        assert len(bodies) == 6
        assert all(b"SRPM" not in body and b"ping" not in body for body in bodies)


def _pinged_pair(url: str, tmp_path: Path) -> tuple[Channel, Channel]:
    """Alice and Bob in a fresh psi session, with one ping from Alice waiting at the relay."""
    alice, bob = _clients(url, tmp_path, "alice", "bob")
    assert alice.identity
    assert bob.identity
    s_a = open_session(
        alice, protocol="psi", roles=[("a", alice.identity.party_id), ("b", bob.identity.party_id)]
    )
    s_b = join_session(bob, protocol="psi", session=s_a.id, wait=5)
    a = channel_for(alice, s_a, version=1, timeout=5)
    b = channel_for(bob, s_b, version=1, timeout=5)
    a.send("b", "ping", fields={"i": 1})
    return a, b


def _tampered_run(tmp_path: Path, mutate: Callable[[bytes], bytes]) -> dict[str, object]:
    with coordinator(tmp_path) as url:
        a, b = _pinged_pair(url, tmp_path)
        db = sqlite3.connect(tmp_path / "coordinator.db")
        ((row_id, body),) = db.execute("SELECT id, body FROM session_messages").fetchall()
        db.execute("UPDATE session_messages SET body = ? WHERE id = ?", (mutate(body), row_id))
        db.commit()
        return _exchange_from_b(a, b)


def _exchange_from_b(a: Channel, b: Channel) -> dict[str, object]:
    def run_a() -> None:
        with a.guard():
            a.expect("b", "pong")

    def run_b() -> None:
        with b.guard():
            b.expect("a", "ping")

    return run_local({"a": run_a, "b": run_b}, timeout=60)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        # A flipped bit in the signature, in the ciphertext, or the message cut short.
        (lambda b: bytes([b[0] ^ 1]) + b[1:], "does not verify"),
        (lambda b: b[:100] + bytes([b[100] ^ 0x80]) + b[101:], "does not verify"),
        (lambda b: b[:-1], "does not verify"),
        (lambda b: b[:60], "truncated"),
    ],
)
def test_a_relay_that_tampers_is_caught_on_both_sides(
    tmp_path: Path, mutate: Callable[[bytes], bytes], match: str
) -> None:
    results = _tampered_run(tmp_path, mutate)
    assert all(isinstance(v, ProtocolError) for v in results.values()), results
    assert match in str(results["b"])
    assert "aborted" in str(results["a"])


def test_a_replayed_relay_message_is_refused(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        _, b = _pinged_pair(url, tmp_path)
        db = sqlite3.connect(tmp_path / "coordinator.db")
        db.execute(
            "INSERT INTO session_messages (session, sender, recipient, body, created_at) "
            "SELECT session, sender, recipient, body, created_at FROM session_messages"
        )
        db.commit()
        b.expect("a", "ping")
        with pytest.raises(ProtocolError, match="replayed"):
            b.expect("a", "ping")


def test_a_relay_that_reroutes_is_caught(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        alice, bob, carol = _clients(url, tmp_path, "alice", "bob", "carol")
        assert alice.identity
        assert bob.identity
        assert carol.identity
        roles = [
            ("a", alice.identity.party_id),
            ("b", bob.identity.party_id),
            ("c", carol.identity.party_id),
        ]
        s_a = open_session(alice, protocol="secagg", roles=roles)
        s_c = join_session(carol, protocol="secagg", session=s_a.id, wait=5)
        a = channel_for(alice, s_a, version=1, timeout=5)
        c = channel_for(carol, s_c, version=1, timeout=5)
        a.send("c", "hello")
        db = sqlite3.connect(tmp_path / "coordinator.db")
        db.execute("UPDATE session_messages SET sender = 'b'")  # claim bob sent it
        db.commit()
        with pytest.raises(ProtocolError, match="from b does not verify"):
            c.expect("b", "hello")


def test_relay_bad_input(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        alice, bob = _clients(url, tmp_path, "alice", "bob")
        assert alice.identity
        assert bob.identity
        me, other = alice.identity.party_id, bob.identity.party_id
        good = [("a", me), ("b", other)]
        cases: list[tuple[dict[str, object], type[Exception], str]] = [
            ({"session": "XYZ"}, InvalidInput, "session"),
            ({"participants": [("a", me)]}, InvalidInput, "participants"),
            ({"participants": [("a", me), ("a", other)]}, InvalidInput, "distinct"),
            ({"participants": [("a", other), ("b", "sr1" + "a" * 52)]}, InvalidInput, "caller"),
            ({"participants": [("a", me), ("b", "sr1" + "a" * 52)]}, NotFound, "not a registered"),
            ({"protocol": "Bad Name"}, InvalidInput, "protocol"),
            ({"expires_in": 10}, InvalidInput, "expires_in"),
            ({"request": "md5:abc"}, InvalidInput, "request"),
        ]
        for change, error, match in cases:
            args: dict[str, object] = {
                "session": "ab" * 16,
                "protocol": "psi",
                "participants": good,
                "request": None,
                "expires_in": 600,
            }
            args.update(change)
            session = args.pop("session")
            with pytest.raises(error, match=match):
                alice.create_session(session, **args)  # type: ignore[arg-type]
        assert alice.sessions() == ()  # nothing half-created
        alice.create_session("ab" * 16, protocol="psi", participants=good)
        with pytest.raises(Conflict, match="already exists"):
            alice.create_session("ab" * 16, protocol="psi", participants=good)
        with pytest.raises(InvalidInput, match="not another participant"):
            alice.post_message("ab" * 16, "a", b"to myself")
        with pytest.raises(InvalidInput, match="not another participant"):
            alice.post_message("ab" * 16, "zz", b"to nobody")
        assert bob.next_message("ab" * 16, after=-1) is None
