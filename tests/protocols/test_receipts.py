"""Co-signed run records: everyone signs, the hub shares, everyone verifies; each way to cheat fails."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from sealroom.crypto.keys import Identity
from sealroom.errors import ProtocolError, VerificationFailed
from sealroom.protocols.channel import Channel, LocalNetwork, run_local
from sealroom.protocols.receipts import code_digest, exchange_receipts, sign_receipt, verify_run
from sealroom.statements import (
    Envelope,
    ProtocolParticipant,
    ProtocolReceipt,
    Signed,
    StreamDigest,
    sign_statement,
)

ROLES = ("a", "b", "c")
IDS = {r: Identity.generate() for r in ROLES}
PARTICIPANTS = tuple(
    ProtocolParticipant(
        role=r, party=IDS[r].party_id, inputs=("sha256:" + "1" * 64,) if r == "b" else ()
    )
    for r in ROLES
)


def _network(
    intercept: Callable[[str, str, bytes], list[bytes]] | None = None,
) -> dict[str, Channel]:
    net = LocalNetwork(list(ROLES), intercept=intercept)
    sid = os.urandom(16).hex()
    return {r: net.channel(r, protocol="he", version=1, session=sid, timeout=5) for r in ROLES}


def _party(
    ch: Channel, params: dict[str, object] | None = None
) -> Callable[[], tuple[Signed[ProtocolReceipt], ...]]:
    def run() -> tuple[Signed[ProtocolReceipt], ...]:
        with ch.guard():
            # A toy protocol in a star: the hub greets everyone, everyone answers.
            if ch.me == "a":
                for r in ("b", "c"):
                    ch.send(r, "hello", fields={"n": 1})
                for r in ("b", "c"):
                    ch.expect(r, "answer")
            else:
                ch.expect("a", "hello")
                ch.send("a", "answer", blobs={"x": ch.me.encode()})
            mine, _, _ = sign_receipt(
                ch,
                identity=IDS[ch.me],
                participants=PARTICIPANTS,
                parameters=params or {"k": 3},
                output={"learned": ch.me},
                now=1_800_000_000,
            )
        return exchange_receipts(ch, mine, hub="a", roles=ROLES)

    return run


def _records() -> dict[str, tuple[Signed[ProtocolReceipt], ...]]:
    chans = _network()
    results = run_local({r: _party(chans[r]) for r in ROLES}, timeout=30)
    assert all(isinstance(v, tuple) for v in results.values()), results
    return results  # type: ignore[return-value]


def test_everyone_leaves_with_the_same_verified_record() -> None:
    records = _records()
    digests = {r: tuple(s.digest for s in rec) for r, rec in records.items()}
    assert len(set(digests.values())) == 1
    receipts = [s.statement for s in records["a"]]
    assert [r.role for r in receipts] == list(ROLES)
    assert {r.code_digest for r in receipts} == {code_digest("he")}
    hub = receipts[0]
    assert {(s.sender, s.recipient) for s in hub.transcript} == {
        ("a", "b"),
        ("b", "a"),
        ("a", "c"),
        ("c", "a"),
    }


def _envelopes() -> list[Envelope]:
    return [s.envelope for s in _records()["a"]]


def _resign(env: Envelope, **changes: object) -> Envelope:
    receipt = env.open(ProtocolReceipt).statement
    return sign_statement(receipt.model_copy(update=changes), IDS[receipt.role]).envelope


def test_a_missing_receipt_fails_unless_dropouts_are_allowed() -> None:
    envs = _envelopes()
    with pytest.raises(VerificationFailed, match="no receipt from c"):
        verify_run(envs[:2])
    assert len(verify_run(envs[:2], require_all=False)) == 2


def test_two_receipts_for_one_role_fail() -> None:
    envs = _envelopes()
    with pytest.raises(VerificationFailed, match="two receipts for role a"):
        verify_run([envs[0], envs[0], *envs[1:]])


def test_a_receipt_about_another_run_fails() -> None:
    envs = _envelopes()
    changed = _resign(envs[1], parameters={"k": 1})
    with pytest.raises(VerificationFailed, match="receipt of b describes a different run"):
        verify_run([envs[0], changed, envs[2]])


def test_disagreeing_stream_digests_fail() -> None:
    envs = _envelopes()
    receipt = envs[2].open(ProtocolReceipt).statement
    forged = tuple(
        StreamDigest(sender=s.sender, recipient=s.recipient, digest="sha256:" + "0" * 64)
        for s in receipt.transcript
    )
    with pytest.raises(VerificationFailed, match="disagree about the messages"):
        verify_run([envs[0], envs[1], _resign(envs[2], transcript=forged)])


def test_a_receipt_signed_by_someone_else_fails() -> None:
    envs = _envelopes()
    receipt = envs[1].open(ProtocolReceipt).statement
    mallory = Identity.generate()
    forged = Envelope(
        type=envs[1].type,
        version=envs[1].version,
        payload=envs[1].payload,
        signer=mallory.public,
        signature=mallory.sign(b"whatever"),
    )
    assert receipt.role == "b"
    with pytest.raises(VerificationFailed):
        verify_run([envs[0], forged, envs[2]])


def test_a_hub_that_alters_a_receipt_is_caught_by_its_signer() -> None:
    def intercept(sender: str, recipient: str, data: bytes) -> list[bytes]:
        from sealroom.protocols.wire import Frame

        f = Frame.decode(data)
        if f.kind == "receipt-all" and recipient == "b":
            blobs = dict(f.blobs)
            blobs["b"] = blobs["c"]
            values = {k: getattr(f, k) for k in Frame.__slots__}
            values["blobs"] = blobs
            return [Frame(**values).encode()]
        return [data]

    chans = _network(intercept)
    results = run_local({r: _party(chans[r]) for r in ROLES}, timeout=30)
    assert isinstance(results["b"], ProtocolError)
    assert "altered" in str(results["b"])


def test_parameters_that_differ_between_parties_fail_the_run_everywhere() -> None:
    chans = _network()
    parties = {r: _party(chans[r], {"k": 3 if r != "c" else 4}) for r in ROLES}
    results = run_local(parties, timeout=30)
    assert all(isinstance(v, BaseException) for v in results.values()), results
