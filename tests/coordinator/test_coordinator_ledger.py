"""The deployment's budget ledger in the coordinator: charges stored with their release, CAS on
each dataset's head, at most one per (request, dataset), proofs an enclave can check."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update

from sealroom.enclave.receipts import issue_receipt
from sealroom.errors import (
    AlreadyReleased,
    InvalidInput,
    PolicyDenied,
    SignatureInvalid,
    StaleLedgerHead,
)
from sealroom.statements import (
    Approval,
    BudgetCharge,
    ComputationRequest,
    DatasetAttestation,
    Envelope,
    InputDecision,
    sign_statement,
)
from sealroom.storage.engine import write_transaction
from sealroom.storage.schema import ledger_charges, requests, results
from sealroom.transparency.checkpoint import NoteVerifier, open_checkpoint
from sealroom.transparency.entries import entry_leaf_hash
from sealroom.transparency.proof import verify_inclusion
from sealroom.wire import SealedOutput
from tests.coordinator.coord_helpers import World
from tests.helpers import T0, approval, identity


def _running(w: World, nonce: int) -> tuple[str, Envelope]:
    """A request on the world's dataset, approved, sealed, claimed; and its receipt."""
    evidence = w.register_enclave()
    rid = w.request((w.dataset,), nonce=nonce)
    a = sign_statement(approval(w.owner, rid, w.dataset), w.owner)
    w.c.approvals.approve(rid, a.envelope, caller=w.owner.party_id, now=T0 + 20)
    w.c.approvals.upload_input(
        rid, w.dataset, b"sealed", enclave=evidence, caller=w.owner.party_id, now=T0 + 30
    )
    job = w.c.jobs.claim(caller=w.enclave.public.party_id, now=T0 + 40)
    assert job is not None
    assert job.request.digest == rid
    att = job.attestations[0].open(DatasetAttestation)
    receipt, _ = issue_receipt(
        w.enclave,
        request=job.request.open(ComputationRequest),
        approvals=[job.approvals[0].open(Approval)],
        attestations=[att],
        outputs={w.requester.party_id: b'{"rows":3}'},
        decisions=[
            InputDecision(
                dataset=att.digest,
                policy=att.statement.policy,
                room_policy=None,
                decision="allow",
                automatic=False,
                reasons=("approved by hand",),
                k=5,
                entity_column=None,
                never_output=(),
                join_only=(),
                max_output_rows=None,
                epsilon="0",
                delta="0",
            )
        ],
        issued_at=T0 + 50,
    )
    return rid, receipt.envelope


def _complete(w: World, rid: str, receipt: Envelope, charges: list[Envelope]) -> Any:
    outputs = [SealedOutput(recipient=w.requester.party_id, sealed=b"ciphertext")]
    return w.c.jobs.complete(
        rid, receipt, outputs, caller=w.enclave.public.party_id, now=T0 + 50, charges=charges
    )


def _stored(w: World, rid: str) -> tuple[int, int]:
    """(charges, results) stored for ``rid``."""
    with w.c.state.engine.connect() as conn:
        c = conn.execute(
            select(func.count()).select_from(ledger_charges).where(ledger_charges.c.request == rid)
        ).scalar_one()
        r = conn.execute(
            select(func.count()).select_from(results).where(results.c.request == rid)
        ).scalar_one()
    return int(c), int(r)


def test_charges_chain_per_dataset_with_proofs_an_enclave_checks(w: World) -> None:
    first, r1 = _running(w, 1)
    assert _complete(w, first, r1, [w.charge(first)]).status == "completed"
    second, r2 = _running(w, 2)
    assert _complete(w, second, r2, [w.charge(second)]).status == "completed"

    view = w.c.ledgers.view(w.dataset, caller=w.enclave.public.party_id)
    verifier = NoteVerifier.from_vkey(w.c.log.key().verifier_key)
    cp = open_checkpoint(view.checkpoint, verifier)
    chain = [c.envelope.open(BudgetCharge) for c in view.charges]
    assert [c.statement.request for c in chain] == [first, second]
    assert [(c.statement.seq, c.statement.prev) for c in chain] == [(0, None), (1, chain[0].digest)]
    for item in view.charges:
        assert item.salt is not None  # a charge is private: the log holds its commitment
        verify_inclusion(
            item.log_index,
            cp.size,
            entry_leaf_hash(item.envelope.to_json(), item.salt),
            item.inclusion,
            cp.root_hash,
        )


def test_a_charge_on_a_stale_head_stores_nothing(w: World) -> None:
    first, r1 = _running(w, 1)
    second, r2 = _running(w, 2)
    # Both enclaves read the empty ledger; the first to complete wins the head.
    late = w.charge(second, head=(0, None))
    _complete(w, first, r1, [w.charge(first)])
    with pytest.raises(StaleLedgerHead):
        _complete(w, second, r2, [late])
    assert _stored(w, second) == (0, 0)
    view = w.c.requests.get(second, caller=w.requester.party_id, now=T0 + 60)
    assert view.status == "running"  # the enclave reads again and retries
    assert _complete(w, second, r2, [w.charge(second)]).status == "completed"
    assert _stored(w, second) == (1, 1)


def test_no_release_without_a_charge_for_every_input(w: World) -> None:
    rid, receipt = _running(w, 1)
    with pytest.raises(InvalidInput, match="every release is charged"):
        _complete(w, rid, receipt, [])
    other = w.publish(w.owner, title="another")
    with pytest.raises(InvalidInput):
        _complete(w, rid, receipt, [w.charge(rid), w.charge(rid, other)])
    assert _stored(w, rid) == (0, 0)


def test_a_charge_must_be_the_enclaves_own_for_this_request(w: World) -> None:
    rid, receipt = _running(w, 1)
    mallory = identity("mallory")
    forged = w.charge(rid)
    payload = forged.open(BudgetCharge).statement.model_copy(update={"enclave": mallory.party_id})
    with pytest.raises(SignatureInvalid):
        _complete(w, rid, receipt, [sign_statement(payload, mallory).envelope])
    with pytest.raises(InvalidInput, match="another request"):
        _complete(w, rid, receipt, [w.charge("sha256:" + "7" * 64)])
    assert _stored(w, rid) == (0, 0)


def test_a_charge_must_agree_with_the_receipt(w: World) -> None:
    rid, receipt = _running(w, 1)
    with pytest.raises(InvalidInput, match="differs from the receipt"):
        _complete(w, rid, receipt, [w.charge(rid, epsilon="0.5")])  # the receipt says 0
    assert _stored(w, rid) == (0, 0)
    assert _complete(w, rid, receipt, [w.charge(rid)]).status == "completed"


def test_a_replayed_completion_is_refused_by_the_ledger(w: World) -> None:
    """A coordinator that puts a completed request back to running cannot store a second
    release: the (request, dataset) charge exists."""
    rid, receipt = _running(w, 1)
    _complete(w, rid, receipt, [w.charge(rid)])
    with write_transaction(w.c.state.engine) as conn:
        conn.execute(update(requests).where(requests.c.request == rid).values(status="running"))
    with pytest.raises(AlreadyReleased):
        _complete(w, rid, receipt, [w.charge(rid)])
    assert _stored(w, rid) == (1, 1)


def test_only_enclaves_read_a_ledger(w: World) -> None:
    with pytest.raises(PolicyDenied):
        w.c.ledgers.view(w.dataset, caller=w.requester.party_id)
