"""The SDK flows end to end against the real coordinator, with an in-process simulated enclave."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.crypto.release import RELEASE_PURPOSE, unwrap
from sealroom.crypto.sealing import SUITE_XWING_AES256GCM, SealContext, SealedHeader, open_sealed
from sealroom.enclave.state import EnclaveState
from sealroom.enclave.worker import EnclaveWorker
from sealroom.errors import AttestationInvalid, BackendUnavailable, CommitmentMismatch, NotFound
from sealroom.verification.bundle import ProofBundle
from sealroom.verification.trust import trust_policy
from sealroom.verification.verify import BundleRejected, verify_bundle
from tests.client.client_world import (
    AUTO_POLICY,
    TOPICS_A,
    TOPICS_B,
    now,
    party,
    write_jsonl,
)
from tests.services import coordinator, enclave_keys, registered_enclave


def test_publish_request_approve_run_result_verify(tmp_path: Path, db_url: str) -> None:
    """On SQLite and on PostgreSQL (a throwaway schema: ``db_url``), as ``sealroom serve --db``."""
    with coordinator(tmp_path, db_url=db_url) as url:
        alice_home, alice = party(tmp_path, "alice")
        bob_home, bob = party(tmp_path, "bob")
        carol_home, carol = party(tmp_path, "carol")
        a = Client(base_url=url, identity=alice)
        b = Client(base_url=url, identity=bob)
        c = Client(base_url=url, identity=carol)
        for client, name in ((a, "alice"), (b, "bob"), (c, "carol")):
            client.register_party(name)

        a_file = write_jsonl(tmp_path / "alice.jsonl", TOPICS_A)
        b_file = write_jsonl(tmp_path / "bob.jsonl", TOPICS_B)
        pa_ = flows.publish(
            a,
            alice,
            a_file,
            title="Alice's TEE log",
            description="work notes",
            policy_rules=AUTO_POLICY,
            now=now(),
            home=alice_home,
        )
        pb = flows.publish(
            b,
            bob,
            b_file,
            title="Bob's systems log",
            description="notes",
            policy_rules=None,
            now=now(),
            home=bob_home,
        )
        assert pa_.policy is not None
        assert pb.policy is None
        index = json.loads((alice_home / "datasets.json").read_text())
        assert index["datasets"][pa_.dataset]["path"] == str(a_file.resolve())

        # The app migrated its own tables into the database it was given.
        engine = sa.create_engine(db_url)
        try:
            assert {"datasets", "requests", "parties"} <= set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()

        # Discovery: the backend's full-text search, and keyword Jaccard.
        hits = a.search("tee")
        assert pa_.dataset in {h.dataset.dataset for h in hits.items}
        similar = {h.dataset.dataset: h for h in b.search(None, similar_to=pb.dataset).items}
        jaccard = similar[pa_.dataset].jaccard
        assert jaccard is not None
        assert jaccard > 0

        # Enclave: registered before anyone seals.
        worker = registered_enclave(url)
        assert worker.step().outcome == "idle"

        view = flows.request(
            b, bob, "topic-overlap", [pa_.dataset, pb.dataset], {"top": 10}, now=now()
        )
        assert set(view.recipients) == {alice.party_id, bob.party_id}
        assert view.status == "pending"

        # Someone who is not a party of the request cannot see it, let alone approve it.
        with pytest.raises(NotFound):
            flows.approve(c, carol, view.request, home=carol_home, allow_simulated=True, now=now())

        # Simulated evidence is refused unless explicitly allowed; nothing is signed then.
        with pytest.raises(AttestationInvalid, match="allow"):
            flows.approve(b, bob, view.request, home=bob_home, now=now())
        assert flows.status(b, view.request).inputs[1].decision == "pending"

        # Alice's policy approves topic-overlap automatically; Bob decides by hand.
        auto = flows.auto_approve(a, alice, home=alice_home, allow_simulated=True, now=now())
        assert [(x.dataset, x.action) for x in auto] == [(pa_.dataset, "approved")]
        assert auto[0].result is not None
        assert auto[0].result.mode == "policy"
        assert auto[0].result.simulated
        assert (
            flows.auto_approve(b, bob, home=bob_home, allow_simulated=True, now=now())[0].action
            == "left"
        )

        done = flows.approve(b, bob, view.request, home=bob_home, allow_simulated=True, now=now())
        assert [d.mode for d in done] == ["manual"]
        assert done[0].status == "approved"

        # Harvest now, decrypt later: what the coordinator keeps is sealed with suite 2
        # (X-Wing), because the enclave's attested key document carries its X-Wing key.
        engine = sa.create_engine(db_url)
        try:
            with engine.connect() as conn:
                blobs = conn.execute(
                    sa.text(
                        "SELECT p.sealed FROM input_parts p JOIN input_uploads u "
                        "ON u.upload = p.upload WHERE u.request = :r AND p.part = 0"
                    ),
                    {"r": view.request},
                ).scalars()
                suites = [SealedHeader.parse(bytes(blob)).suite for blob in blobs]
        finally:
            engine.dispose()
        assert suites == [SUITE_XWING_AES256GCM] * 2

        step = worker.step()
        assert step.outcome == "completed", step.reason
        final = flows.wait(b, view.request, timeout=5)
        assert final.status == "completed"

        with pytest.raises(BundleRejected):
            flows.fetch_result(b, bob, view.request, tmp_path / "bob-out", home=bob_home)
        got = flows.fetch_result(
            b, bob, view.request, tmp_path / "bob-out", home=bob_home, allow_simulated=True
        )
        assert got.simulated
        assert any("SIMULATED" in w for w in got.report.warnings)
        assert "shared" in json.dumps(got.body)
        got_a = flows.fetch_result(
            a, alice, view.request, tmp_path / "alice-out", home=alice_home, allow_simulated=True
        )
        assert got_a.body == got.body
        # The results too: the recipients' keys came from their signed envelopes, X-Wing included.
        # (The stored result is wrapped until its release key, sealed the same way, is posted.)
        served = b.result(view.request)
        assert served.release_key is not None
        assert SealedHeader.parse(served.release_key).suite == SUITE_XWING_AES256GCM
        key = open_sealed(
            served.release_key,
            bob,
            SealContext(
                request_digest=bytes.fromhex(view.request.removeprefix("sha256:")),
                recipient=bob.party_id,
                purpose=RELEASE_PURPOSE,
            ),
        )
        inner = unwrap(served.sealed, key, request=view.request, recipient=bob.party_id)
        assert SealedHeader.parse(inner).suite == SUITE_XWING_AES256GCM

        # The written bundle verifies offline with the written result, and only that one.
        bundle = ProofBundle.from_json((tmp_path / "bob-out" / "bundle.json").read_bytes())
        report = verify_bundle(bundle, trust=trust_policy(allow_simulated=True))
        assert report.simulated
        with pytest.raises(NotFound):
            c.result(view.request)

    # A second app on the same database sees the same state (migrations are idempotent).
    with coordinator(tmp_path, db_url=db_url) as url:
        listed = {d.dataset for d in Client(base_url=url).list_datasets().items}
        assert listed == {pa_.dataset, pb.dataset}


def test_changed_data_is_never_sealed(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        alice_home, alice = party(tmp_path, "alice")
        bob_home, bob = party(tmp_path, "bob")
        a = Client(base_url=url, identity=alice)
        b = Client(base_url=url, identity=bob)
        a.register_party("alice")
        b.register_party("bob")
        a_file = write_jsonl(tmp_path / "alice.jsonl", TOPICS_A)
        pub = flows.publish(
            a,
            alice,
            a_file,
            title="A",
            description="",
            policy_rules=None,
            now=now(),
            home=alice_home,
        )
        b_file = write_jsonl(tmp_path / "bob.jsonl", TOPICS_B)
        pub_b = flows.publish(
            b, bob, b_file, title="B", description="", policy_rules=None, now=now(), home=bob_home
        )
        registered_enclave(url)
        view = flows.request(b, bob, "gap-analysis", [pub.dataset, pub_b.dataset], {}, now=now())
        assert view.recipients == (bob.party_id,)
        write_jsonl(a_file, TOPICS_A, rows=61)
        with pytest.raises(CommitmentMismatch, match="no longer matches"):
            flows.approve(a, alice, view.request, home=alice_home, allow_simulated=True, now=now())
        assert flows.status(a, view.request).inputs[0].decision == "pending"
        rejected = flows.reject(a, alice, view.request, reason="not now", now=now())
        assert rejected.status == "rejected"


def test_worker_loop_reports_a_failing_job_and_stops_on_event(tmp_path: Path) -> None:
    import threading

    with coordinator(tmp_path) as url:
        alice_home, alice = party(tmp_path, "alice")
        bob_home, bob = party(tmp_path, "bob")
        a = Client(base_url=url, identity=alice)
        b = Client(base_url=url, identity=bob)
        a.register_party("alice")
        b.register_party("bob")
        pub_a = flows.publish(
            a,
            alice,
            write_jsonl(tmp_path / "a.jsonl", TOPICS_A),
            title="A",
            description="",
            # The owner keeps its text out of every output: a text computation passes the
            # pre-check (the column exists and is text) and is refused by the enclave's run.
            policy_rules={"allow": [{"id": "gap-analysis"}], "k": 3, "never_output": ["text"]},
            now=now(),
            home=alice_home,
        )
        pub_b = flows.publish(
            b,
            bob,
            write_jsonl(tmp_path / "b.jsonl", TOPICS_B),
            title="B",
            description="",
            policy_rules=None,
            now=now(),
            home=bob_home,
        )
        keys = enclave_keys(now=now())
        events: list[str] = []
        worker = EnclaveWorker(
            source=Client(base_url=url, identity=keys.identity),
            keys=keys,
            state=EnclaveState.create_temporary(),
            idle_min=0.05,
            idle_max=0.2,
            on_event=events.append,
        )
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        try:
            view = flows.request(
                b,
                bob,
                "gap-analysis",
                [pub_a.dataset, pub_b.dataset],
                {},
                now=now(),
            )
            flows.wait(b, view.request, until={"pending"}, timeout=1)
            for _ in range(200):  # the worker registers its evidence on its first step
                if not events:
                    stop.wait(0.05)
            assert events[0].startswith("registered enclave")
            for client, who, home in ((a, alice, alice_home), (b, bob, bob_home)):
                flows.approve(client, who, view.request, home=home, allow_simulated=True, now=now())
            final = flows.wait(b, view.request, timeout=10, interval=0.05)
        finally:
            stop.set()
            thread.join(timeout=10)
        assert not thread.is_alive()
        assert final.status == "failed"
        assert final.status_reason is not None
        assert "compute" in final.status_reason
        assert "never-output" in final.status_reason
        assert any(e.startswith("failed ") for e in events)


def test_worker_waits_for_a_coordinator_that_is_starting(tmp_path: Path) -> None:
    keys = enclave_keys(now=now())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    events: list[str] = []
    clock = [0.0]
    worker = EnclaveWorker(
        source=Client(base_url=dead, identity=keys.identity),
        keys=keys,
        state=EnclaveState.create_temporary(),
        on_event=events.append,
    )
    with pytest.raises(BackendUnavailable, match="cannot reach"):
        worker.register_when_ready(
            timeout=3.0,
            sleep=lambda d: clock.__setitem__(0, clock[0] + d),
            monotonic=lambda: clock[0],
        )
    assert len(events) >= 3
    assert all("retrying" in e for e in events)
    assert clock[0] <= 3.0

    with coordinator(tmp_path) as url:
        worker = EnclaveWorker(
            source=Client(base_url=url, identity=keys.identity),
            keys=keys,
            state=EnclaveState.create_temporary(),
        )
        assert worker.register_when_ready(timeout=0) == keys.evidence.digest
