"""Deletion statements end to end: the real enclave worker signs what it held after the job,
the coordinator logs it privately and records its own erasures; retention deletes results."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from sealroom.audit.pack import verify_logged_statement
from sealroom.client.audit import logged_statements as _logged
from sealroom.client.http import Client
from sealroom.crypto.keys import Identity
from sealroom.errors import InvalidInput, NotFound, SignatureInvalid
from sealroom.statements import Deletion, Receipt, sign_statement
from sealroom.verification.trust import trust_policy
from tests.audit.world import RETENTION, audited_run


def _count(db_url: str, table: str, request: str) -> int:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(f"SELECT count(*) FROM {table} WHERE request = :r"),
                    {"r": request},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_enclave_signs_a_deletion_and_retention_deletes_results(
    tmp_path: Path, db_url: str
) -> None:
    with audited_run(tmp_path, db_url) as run:
        b = run.bob_client
        view = b.deletions(run.request)
        assert len(view.deletions) == 1
        logged = view.deletions[0]
        deletion = logged.envelope.open(Deletion).statement
        # Signed by the enclave that ran the job, for the receipt it issued.
        assert logged.envelope.signer == run.worker._keys.public
        assert deletion.enclave == run.worker._keys.public.party_id
        receipt_env = b.result(run.request).receipt
        receipt = receipt_env.open(Receipt).statement
        assert deletion.outcome == "completed"
        assert deletion.receipt == receipt_env.digest
        assert deletion.method == "released-process-memory"
        assert deletion.outputs_held == len(receipt.outputs)
        roots = {i.dataset: i.commitment_root for i in receipt.inputs}
        assert {i.dataset: i.commitment_root for i in deletion.inputs} == roots
        # The coordinator erased the same ciphertexts when the request completed.
        erased = {e.subject: e for e in view.erasures if e.kind == "sealed-input"}
        assert {i.dataset: (i.sealed, i.sealed_size) for i in deletion.inputs} == {
            d: (e.sealed, e.size) for d, e in erased.items()
        }
        assert _count(run.db_url, "request_blobs", run.request) == 0

        # In the log as a salted commitment, with a proof under the pinned log key.
        key = b.log_key().verifier_key
        (proof,) = _logged(view, key)
        verify_logged_statement(proof, trust_policy(log_key=key))
        entry = b.log_entry(logged.log_index)
        assert entry.entry is None
        assert entry.commitment is not None
        assert logged.salt is not None

        # Results stay until retention has passed, then a sweep erases them and says so.
        assert b.result(run.request).sealed
        time.sleep(max(0.0, run.completed_at + RETENTION + 1 - time.time()))
        with pytest.raises(NotFound, match="deleted by retention"):
            b.result(run.request)
        assert _count(run.db_url, "results", run.request) == 0
        after = b.deletions(run.request)
        results = [e for e in after.erasures if e.kind == "sealed-result"]
        assert {e.subject for e in results} == {run.alice.party_id, run.bob.party_id}
        assert all(e.reason == f"results deleted after retention of {RETENTION} s" for e in results)
        # The deletion is still provable after the log grew.
        (again,) = _logged(after, key)
        verify_logged_statement(again, trust_policy(log_key=key))

        # Not a party of the request: nothing to see.
        carol = Client(base_url=run.url, identity=Identity.generate())
        carol.register_party("carol")
        with pytest.raises(NotFound):
            carol.deletions(run.request)


def test_coordinator_refuses_deletions_it_cannot_attribute(tmp_path: Path) -> None:
    with audited_run(tmp_path) as run:
        enclave = run.worker._keys
        view = run.bob_client.deletions(run.request)
        honest = view.deletions[0].envelope.open(Deletion).statement
        client = run.worker._source
        # Posting the same deletion again is idempotent.
        again = client.record_deletion(run.request, view.deletions[0].envelope)  # type: ignore[attr-defined]
        assert again.deletion == view.deletions[0].envelope.digest
        # A party who did not run the job has no job to account for, whoever signed.
        forged = honest.model_copy(update={"enclave": run.bob.party_id})
        with pytest.raises(NotFound, match="claimed by you"):
            run.bob_client.record_deletion(run.request, sign_statement(forged, run.bob).envelope)
        with pytest.raises(NotFound, match="claimed by you"):
            run.bob_client.record_deletion(run.request, view.deletions[0].envelope)
        # The enclave posting a deletion someone else signed: not its account.
        with pytest.raises(SignatureInvalid, match="signed by the enclave that ran the job"):
            client.record_deletion(  # type: ignore[attr-defined]
                run.request, sign_statement(forged, run.bob).envelope
            )
        # A completed job's deletion naming another receipt.
        wrong = honest.model_copy(update={"receipt": "sha256:" + "00" * 32, "erased_at": 1})
        with pytest.raises(InvalidInput, match="receipt the request does not have"):
            client.record_deletion(  # type: ignore[attr-defined]
                run.request, sign_statement(wrong, enclave.identity).envelope
            )
        # Naming a dataset that is not an input of the request.
        stray = honest.model_copy(
            update={
                "inputs": (honest.inputs[0].model_copy(update={"dataset": "sha256:" + "22" * 32}),)
            }
        )
        with pytest.raises(InvalidInput, match="not an input of the request"):
            client.record_deletion(  # type: ignore[attr-defined]
                run.request, sign_statement(stray, enclave.identity).envelope
            )
        assert len(run.bob_client.deletions(run.request).deletions) == 1


def test_the_coordinator_sweeps_retention_on_its_own(tmp_path: Path) -> None:
    """No call touches the request after it completes: the periodic sweep still deletes."""
    with audited_run(tmp_path, sweep_interval=0.2) as run:
        assert _count(run.db_url, "results", run.request) == 2
        deadline = time.time() + RETENTION + 10
        while _count(run.db_url, "results", run.request) and time.time() < deadline:
            time.sleep(0.2)
        assert _count(run.db_url, "results", run.request) == 0
        assert _count(run.db_url, "erasures", run.request) == 4  # two inputs, two results
