"""The channel: ordering, replay, impersonation, timeouts and aborts end the run on every side."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import pytest

from sealroom.errors import InvalidInput, ProtocolError
from sealroom.protocols.channel import Channel, LocalNetwork, run_local
from sealroom.protocols.wire import Frame

Intercept = Callable[[str, str, bytes], Sequence[bytes]]


def pair(intercept: Intercept | None = None, **kw: object) -> tuple[LocalNetwork, Channel, Channel]:
    net = LocalNetwork(["a", "b"], intercept=intercept)
    sid = os.urandom(16).hex()
    return (
        net,
        net.channel("a", protocol="demo", version=1, session=sid, **kw),
        net.channel("b", protocol="demo", version=1, session=sid, **kw),
    )


def ping_pong(a: Channel, b: Channel, rounds: int = 3) -> dict[str, object]:
    def run_a() -> int:
        with a.guard():
            total = 0
            for i in range(rounds):
                a.send("b", "ping", fields={"i": i})
                total += a.expect("b", "pong").int_field("i", lo=0, hi=100)
            return total

    def run_b() -> int:
        with b.guard():
            for _ in range(rounds):
                i = b.expect("a", "ping").int_field("i", lo=0, hi=100)
                b.send("a", "pong", fields={"i": i * 2})
            return -1

    return run_local({"a": run_a, "b": run_b}, timeout=30)


def both_failed(results: dict[str, object], match: str) -> None:
    for name, value in results.items():
        assert isinstance(value, ProtocolError), f"{name} returned {value!r}"
    assert any(match in str(v) for v in results.values()), results


def test_a_clean_run_and_matching_transcripts() -> None:
    _, a, b = pair()
    assert ping_pong(a, b) == {"a": 6, "b": -1}
    assert a.transcript() == b.transcript()
    assert len(a.transcript()) == 2


def test_transcripts_differ_when_a_message_differs() -> None:
    _, a1, b1 = pair()
    ping_pong(a1, b1, rounds=2)
    _, a2, b2 = pair()
    ping_pong(a2, b2, rounds=3)
    assert a1.transcript() != a2.transcript()


def _rewrite(**changes: object) -> Intercept:
    def intercept(sender: str, recipient: str, data: bytes) -> list[bytes]:
        f = Frame.decode(data)
        if f.kind == "ping" and f.seq == 1:
            values = {k: getattr(f, k) for k in Frame.__slots__}
            values.update(changes)
            return [Frame(**values).encode()]
        return [data]

    return intercept


@pytest.mark.parametrize(
    ("intercept", "match"),
    [
        (lambda s, r, d: [d, d] if s == "a" else [d], "replayed"),
        (_rewrite(seq=5), "out-of-order"),
        (_rewrite(session="f" * 32), "another session"),
        (_rewrite(protocol="other"), "expected demo v1"),
        (_rewrite(version=2), "expected demo v1"),
        (_rewrite(recipient="c"), "addressed to c"),
        (_rewrite(sender="b"), "claims to be from b"),
        (_rewrite(kind="pong"), "expected ping from a, got pong"),
        (lambda s, r, d: [d[:-1]] if s == "a" else [d], "malformed message"),
        (lambda s, r, d: [d + b"\x00"] if s == "b" else [d], "trailing bytes"),
    ],
)
def test_violations_end_the_run_on_both_sides(intercept: Intercept, match: str) -> None:
    _, a, b = pair(intercept)
    both_failed(ping_pong(a, b), match)


def test_a_dropped_message_times_out_and_aborts_the_peer() -> None:
    _, a, b = pair(lambda s, r, d: [] if s == "a" else [d], timeout=0.5)
    both_failed(ping_pong(a, b), "timed out waiting for ping from a")


def test_oversize_messages_are_refused_by_sender_and_receiver() -> None:
    _, a, _ = pair(max_frame=1024)
    with pytest.raises(ProtocolError, match="over 1024"):
        a.send("b", "big", blobs={"x": b"\x00" * 2048})
    net, _, b = pair()
    small = Channel(
        transport=net.transport("b"),
        protocol="demo",
        version=1,
        session=b.session,
        me="b",
        peers=["a"],
        max_frame=1024,
        timeout=1,
    )
    big = net.channel("a", protocol="demo", version=1, session=b.session)
    big.send("b", "big", blobs={"x": b"\x00" * 2048})
    with pytest.raises(ProtocolError, match="exceeds the limit of 1024"):
        small.expect("a", "big")


def test_a_stranger_cannot_inject() -> None:
    net = LocalNetwork(["a", "b", "mallory"])
    sid = os.urandom(16).hex()
    b = Channel(
        transport=net.transport("b"), protocol="demo", version=1, session=sid, me="b", peers=["a"]
    )
    mallory = Channel(
        transport=net.transport("mallory"),
        protocol="demo",
        version=1,
        session=sid,
        me="mallory",
        peers=["b"],
    )
    mallory.send("b", "ping", fields={"i": 1})
    with pytest.raises(ProtocolError, match="not a peer"):
        b.expect("a", "ping", timeout=1)


def test_guard_turns_local_errors_into_aborts_without_leaking_detail() -> None:
    _, a, b = pair()

    def run_a() -> None:
        with a.guard():
            raise InvalidInput("secret value 42 is bad")

    def run_b() -> None:
        with b.guard():
            b.expect("a", "ping", timeout=5)

    results = run_local({"a": run_a, "b": run_b})
    both_failed(results, "aborted")
    assert "42" not in str(results["b"])


def test_collect_returns_whoever_answers_in_time() -> None:
    net = LocalNetwork(["s", "c1", "c2", "c3"])
    sid = os.urandom(16).hex()
    ch = {p: net.channel(p, protocol="demo", version=1, session=sid) for p in net.parties}
    ch["c1"].send("s", "share", fields={"v": 1})
    ch["c3"].send("s", "share", fields={"v": 3})
    got = ch["s"].collect(["c1", "c2", "c3"], "share", timeout=0.3)
    assert sorted(got) == ["c1", "c3"]
    # A late message from c2 is still its next message, in order.
    ch["c2"].send("s", "share", fields={"v": 2})
    assert ch["s"].expect("c2", "share").int_field("v", lo=0, hi=9) == 2


def test_a_channel_refuses_itself_as_peer() -> None:
    net = LocalNetwork(["a"])
    with pytest.raises(ProtocolError, match="distinct peers"):
        Channel(
            transport=net.transport("a"),
            protocol="demo",
            version=1,
            session="0" * 32,
            me="a",
            peers=["a"],
        )
