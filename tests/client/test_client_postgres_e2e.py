"""The SDK flows end to end against the real app on PostgreSQL (``sealroom serve --db postgresql+psycopg://...``).

The database is a throwaway schema (``options=-csearch_path=<schema>`` in the URL),
dropped afterwards, so the test leaves the shared database as it found it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from client_world import AUTO_POLICY, TOPICS_A, TOPICS_B, now, party, write_jsonl

from sealroom.api.app import create_app
from sealroom.api.testing import run_in_thread
from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.computations import default_registry
from sealroom.enclave.state import EnclaveState
from sealroom.enclave.worker import EnclaveWorker, make_enclave_keys
from sealroom.errors import NotFound
from sealroom.verification.bundle import ProofBundle
from sealroom.verification.trust import trust_policy
from sealroom.verification.verify import verify_bundle


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[tuple[str, str]]:
    """(URL whose search_path is a fresh schema, schema name); the schema is dropped after."""
    schema = f"sr_e2e_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}", schema
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


def _tables_in(postgres_url: str, schema: str) -> set[str]:
    engine = sa.create_engine(postgres_url)
    try:
        return set(sa.inspect(engine).get_table_names(schema=schema))
    finally:
        engine.dispose()


def test_postgres_publish_search_request_approve_run_fetch_verify(
    tmp_path: Path, postgres_url: str, pg_schema_url: tuple[str, str]
) -> None:
    url_with_schema, schema = pg_schema_url
    app = create_app(db_url=url_with_schema, registry=default_registry())
    # The app migrated into the throwaway schema, not into public.
    assert {"datasets", "requests", "parties"} <= _tables_in(postgres_url, schema)

    with run_in_thread(app) as url:
        alice_home, alice = party(tmp_path, "alice")
        bob_home, bob = party(tmp_path, "bob")
        a = Client(base_url=url, identity=alice)
        b = Client(base_url=url, identity=bob)
        a.register_party("alice")
        b.register_party("bob")

        pub_a = flows.publish(
            a,
            alice,
            write_jsonl(tmp_path / "alice.jsonl", TOPICS_A),
            title="Alice's TEE log",
            description="work notes on attestation",
            policy_rules=AUTO_POLICY,
            now=now(),
            home=alice_home,
        )
        pub_b = flows.publish(
            b,
            bob,
            write_jsonl(tmp_path / "bob.jsonl", TOPICS_B),
            title="Bob's systems log",
            description="notes",
            policy_rules=None,
            now=now(),
            home=bob_home,
        )

        # Discovery runs on PostgreSQL's full text search.
        hits = b.search("tee")
        assert pub_a.dataset in {h.dataset.dataset for h in hits.items}
        similar = b.search(None, similar_to=pub_b.dataset)
        by_id = {h.dataset.dataset: h for h in similar.items}
        assert by_id[pub_a.dataset].jaccard is not None
        assert by_id[pub_a.dataset].jaccard > 0  # type: ignore[operator]

        keys = make_enclave_keys(now=now())
        worker = EnclaveWorker(
            source=Client(base_url=url, identity=keys.identity),
            keys=keys,
            state=EnclaveState.create_temporary(),
        )
        worker.register()
        assert worker.step().outcome == "idle"

        view = flows.request(
            b, bob, "topic-overlap", [pub_a.dataset, pub_b.dataset], {"top": 10}, now=now()
        )
        assert view.status == "pending"
        auto = flows.auto_approve(a, alice, home=alice_home, allow_simulated=True, now=now())
        assert [(x.dataset, x.action) for x in auto] == [(pub_a.dataset, "approved")]
        done = flows.approve(b, bob, view.request, home=bob_home, allow_simulated=True, now=now())
        assert done[0].status == "approved"

        step = worker.step()
        assert step.outcome == "completed", step.reason
        assert flows.wait(b, view.request, timeout=5).status == "completed"

        got = flows.fetch_result(
            b, bob, view.request, tmp_path / "bob-out", home=bob_home, allow_simulated=True
        )
        assert got.simulated
        got_a = flows.fetch_result(
            a, alice, view.request, tmp_path / "alice-out", home=alice_home, allow_simulated=True
        )
        assert got_a.body == got.body
        assert "shared" in json.dumps(got.body)

        bundle = ProofBundle.from_json((tmp_path / "bob-out" / "bundle.json").read_bytes())
        assert verify_bundle(bundle, trust=trust_policy(allow_simulated=True)).simulated

        with pytest.raises(NotFound):
            b.dataset("sha256:" + "0" * 64)

    # A second app on the same schema sees the same state (migrations are idempotent).
    again = create_app(db_url=url_with_schema, registry=default_registry())
    with run_in_thread(again) as url2:
        c = Client(base_url=url2)
        listed = {d.dataset for d in c.list_datasets().items}
        assert listed == {pub_a.dataset, pub_b.dataset}
