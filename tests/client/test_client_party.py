"""The SDK's face: a Party against a real coordinator and a simulated enclave running its jobs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import sealroom.client
from sealroom.client import Client, Party, ProtocolRun
from sealroom.errors import Conflict, InvalidInput, KeystoreError, VerificationFailed
from sealroom.protocols.channel import run_local
from sealroom.statements import ComputationRequest
from tests.client.client_world import AUTO_POLICY, TOPICS_A, TOPICS_B, write_jsonl

MANUAL_POLICY = {"allow": [{"id": "topic-overlap"}, {"id": "gap-analysis"}], "k": 3}


def _both(a: Callable[[], ProtocolRun], b: Callable[[], ProtocolRun]) -> list[ProtocolRun]:
    got = run_local({"a": a, "b": b}, timeout=120)
    for value in got.values():
        if isinstance(value, BaseException):
            raise value
    return [got["a"], got["b"]]  # type: ignore[list-item]


def test_the_public_surface_is_small_and_importable() -> None:
    assert "Party" in sealroom.client.__all__
    assert len(sealroom.client.__all__) < 20
    for name in sealroom.client.__all__:
        assert getattr(sealroom.client, name) is not None


def test_create_registers_and_open_finds_the_same_party(
    tmp_path: Path, coordinator_url: str
) -> None:
    with Party.create(
        home=tmp_path / "alice", name="alice", url=coordinator_url, unencrypted=True
    ) as alice:
        assert alice.name == "alice"
        assert alice.home == tmp_path / "alice"
        assert alice.client.party(alice.party_id).name == "alice"
    with Party.open(home=tmp_path / "alice", url=coordinator_url) as again:
        assert again.party_id == alice.party_id
        assert again.name == "alice"
    # The context manager closed the HTTP connection pool.
    with pytest.raises(RuntimeError, match="closed"):
        alice.inbox()


def test_a_party_needs_a_keystore_and_a_signing_client(
    tmp_path: Path, coordinator_url: str
) -> None:
    with pytest.raises(InvalidInput):
        Party(client=Client(base_url=coordinator_url), home=tmp_path, name="nobody")
    with pytest.raises(KeystoreError, match="no keystore"):
        Party.open(home=tmp_path / "missing", url=coordinator_url)


def test_the_clock_times_every_statement(tmp_path: Path, coordinator_url: str) -> None:
    fixed = int(time.time()) - 120  # within the server's tolerance for signed requests
    with (
        Party.create(
            home=tmp_path / "alice",
            name="alice",
            url=coordinator_url,
            clock=lambda: fixed,
            unencrypted=True,
        ) as alice,
        Party.create(
            home=tmp_path / "bob",
            name="bob",
            url=coordinator_url,
            clock=lambda: fixed + 7,
            unencrypted=True,
        ) as bob,
    ):
        assert alice.now() == fixed
        mine = alice.publish(write_jsonl(tmp_path / "a.jsonl", TOPICS_A), title="A")
        theirs = bob.publish(write_jsonl(tmp_path / "b.jsonl", TOPICS_B), title="B")
        assert mine.attestation.statement.created_at == fixed
        asked = bob.request("topic-overlap", [mine.dataset, theirs.dataset], ttl=600)
        req = asked.envelope.open(ComputationRequest).statement
        assert (req.created_at, req.expires_at) == (fixed + 7, fixed + 7 + 600)


def test_owner_and_requester_through_the_verbs(
    tmp_path: Path, live_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        Party.create(
            home=tmp_path / "alice", name="alice", url=live_url, unencrypted=True
        ) as alice,
        Party.create(home=tmp_path / "bob", name="bob", url=live_url, unencrypted=True) as bob,
    ):
        notes = alice.publish(
            write_jsonl(tmp_path / "alice.jsonl", TOPICS_A),
            title="Alice's TEE log",
            description="work notes",
            policy=MANUAL_POLICY,
        )
        log = bob.publish(
            write_jsonl(tmp_path / "bob.jsonl", TOPICS_B), title="Bob's log", policy=AUTO_POLICY
        )
        assert notes.dataset in {h.dataset.dataset for h in bob.search("tee").items}
        card = bob.show(notes.dataset)
        assert (card.title, card.owner, card.policy) == (
            "Alice's TEE log",
            alice.party_id,
            notes.policy,
        )
        with monkeypatch.context() as m:  # a coordinator serving another dataset's card
            m.setattr(Client, "dataset", lambda self, _: card)
            with pytest.raises(VerificationFailed, match="another statement"):
                bob.show(log.dataset)

        # The seed's call: the coordinator drafts, the requester checks and signs.
        overlap = bob.keyword_overlap(log.dataset, notes.dataset)
        assert [v.request for v in alice.inbox()] == [overlap.request]
        auto = bob.auto_approve(allow_simulated=True)
        assert [(a.dataset, a.action) for a in auto] == [(log.dataset, "approved")]
        left = alice.auto_approve(allow_simulated=True)
        assert [(a.dataset, a.action) for a in left] == [(notes.dataset, "left")]
        done = alice.approve(overlap.request, allow_simulated=True, reason="fine")
        assert [(d.mode, d.reason, d.simulated) for d in done] == [("manual", "fine", True)]
        assert any("SIMULATED ENCLAVE" in w for w in done[0].warnings)

        assert bob.wait(overlap.request, timeout=60).status == "completed"
        steps: list[str] = []
        got = bob.result(
            overlap.request, tmp_path / "bob-out", allow_simulated=True, on_step=steps.append
        )
        assert steps == [
            "downloading the sealed result",
            "opening it with this party's key",
            "downloading the proof bundle",
            "verifying signatures, TEE evidence and log proofs",
            "writing result.json and bundle.json",
        ]
        theirs = alice.result(overlap.request, tmp_path / "alice-out", allow_simulated=True)
        assert got.simulated
        assert got.body == theirs.body
        assert "shared" in json.dumps(got.body)
        assert got.bundle_path.is_file()

        # Rejected by the owner; withdrawn by the requester; a withdrawn dataset is closed.
        gap = bob.request("gap-analysis", [notes.dataset, log.dataset])
        assert alice.reject(gap.request, reason="not now").status == "rejected"
        again = bob.request("gap-analysis", [notes.dataset, log.dataset], {"top": 5})
        assert bob.withdraw(again.request).status == "withdrawn"
        assert bob.status(again.request).status == "withdrawn"
        assert alice.withdraw_dataset(notes.dataset, reason="moved").status == "withdrawn"
        with pytest.raises(Conflict, match="withdrawn"):
            bob.request("gap-analysis", [notes.dataset, log.dataset])


def test_room_policy_from_rules_is_signed_by_the_requester(
    tmp_path: Path, coordinator_url: str
) -> None:
    with (
        Party.create(
            home=tmp_path / "alice", name="alice", url=coordinator_url, unencrypted=True
        ) as alice,
        Party.create(
            home=tmp_path / "bob", name="bob", url=coordinator_url, unencrypted=True
        ) as bob,
    ):
        mine = alice.publish(write_jsonl(tmp_path / "a.jsonl", TOPICS_A), title="A")
        theirs = bob.publish(write_jsonl(tmp_path / "b.jsonl", TOPICS_B), title="B")
        view = bob.request(
            "topic-overlap",
            [mine.dataset, theirs.dataset],
            room_policy={"allow": [{"id": "topic-overlap"}], "k": 4},
            room_policy_name="our room",
        )
        room = view.envelope.open(ComputationRequest).statement.room_policy
        assert room is not None
        policy = bob.client.policy(room).envelope
        assert policy.signer.party_id == bob.party_id


def test_psi_and_pjc_between_two_parties(tmp_path: Path, coordinator_url: str) -> None:
    with (
        Party.create(
            home=tmp_path / "alice", name="alice", url=coordinator_url, unencrypted=True
        ) as alice,
        Party.create(
            home=tmp_path / "bob", name="bob", url=coordinator_url, unencrypted=True
        ) as bob,
    ):
        a = [f"user{i}".encode() for i in range(0, 40)]
        b = [f"user{i}".encode() for i in range(30, 60)]
        started: list[str] = []
        ran = _both(
            lambda: alice.psi(
                a,
                mode="intersection",
                start_with=[bob.party_id],
                on_start=lambda s: started.append(s.id),
            ),
            lambda: bob.psi(b, mode="intersection", join=True, expect=[alice.party_id]),
        )
        assert started == [ran[0].session.id]
        assert ran[0].intersection == tuple(sorted(set(a) & set(b)))
        assert ran[1].intersection is None  # only the starter matches
        assert ran[0].record.receipts == ran[1].record.receipts

        values = list(range(30))
        ran = _both(
            lambda: alice.pjc(a, start_with=[bob.party_id], min_intersection=5, max_value=100),
            lambda: bob.pjc(b, values, join=True, min_intersection=5, max_value=100),
        )
        assert ran[0].learned["intersection_size"] == 10
        assert ran[0].learned["sum"] == sum(values[:10])

        with pytest.raises(InvalidInput, match="start a run"):
            alice.psi(a)  # neither starts nor joins
        with pytest.raises(InvalidInput, match="start a run"):
            alice.psi(a, start_with=[bob.party_id], join=True)
        with pytest.raises(InvalidInput, match="two parties"):
            alice.psi(a, start_with=[bob.party_id, alice.party_id])
        with pytest.raises(InvalidInput, match="size only"):
            alice.psi(keywords=["x"], mode="intersection", start_with=[bob.party_id])
        with pytest.raises(InvalidInput, match="no data"):
            alice.train("he", features=["x"], data=(b, b), start_with=[bob.party_id])  # type: ignore[arg-type]
