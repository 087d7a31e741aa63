"""One real run to audit: a coordinator, a simulated enclave worker, two parties, retention."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.crypto.keys import Identity
from sealroom.enclave.worker import EnclaveWorker
from tests.client.client_world import AUTO_POLICY, TOPICS_A, TOPICS_B, now, party, write_jsonl
from tests.services import coordinator, registered_enclave

RETENTION = 2


@dataclass
class Run:
    url: str
    db_url: str
    alice: Identity
    bob: Identity
    alice_client: Client
    bob_client: Client
    worker: EnclaveWorker
    request: str
    completed_at: int


@contextmanager
def audited_run(
    tmp_path: Path, db_url: str | None = None, *, sweep_interval: float | None = None
) -> Iterator[Run]:
    """A completed topic-overlap between alice (auto-approving policy with a retention of
    :data:`RETENTION` seconds) and bob (by hand), run by a real enclave worker."""
    db = db_url or f"sqlite:///{tmp_path / 'coordinator.db'}"
    with coordinator(tmp_path, db_url=db, sweep_interval=sweep_interval) as url:
        alice_home, alice = party(tmp_path, "alice")
        bob_home, bob = party(tmp_path, "bob")
        a = Client(base_url=url, identity=alice)
        b = Client(base_url=url, identity=bob)
        a.register_party("alice")
        b.register_party("bob")
        pa = flows.publish(
            a,
            alice,
            write_jsonl(tmp_path / "alice.jsonl", TOPICS_A),
            title="Alice",
            description="",
            policy_rules={**AUTO_POLICY, "retention_seconds": RETENTION},
            now=now(),
            home=alice_home,
        )
        pb = flows.publish(
            b,
            bob,
            write_jsonl(tmp_path / "bob.jsonl", TOPICS_B),
            title="Bob",
            description="",
            policy_rules=None,
            now=now(),
            home=bob_home,
        )
        worker = registered_enclave(url)
        view = flows.request(
            b, bob, "topic-overlap", [pa.dataset, pb.dataset], {"top": 5}, now=now()
        )
        flows.auto_approve(a, alice, home=alice_home, allow_simulated=True, now=now())
        flows.approve(b, bob, view.request, home=bob_home, allow_simulated=True, now=now())
        step = worker.step()
        assert step.outcome == "completed", step.reason
        yield Run(
            url=url,
            db_url=db,
            alice=alice,
            bob=bob,
            alice_client=a,
            bob_client=b,
            worker=worker,
            request=view.request,
            completed_at=int(time.time()),
        )
