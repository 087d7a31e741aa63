"""Room policies in the coordinator (pre-check, job, bundle) and retention of sealed results."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlalchemy import func, select

from sealroom.coordinator.state import MAX_JOB_ATTEMPTS
from sealroom.crypto.keys import Identity
from sealroom.enclave.receipts import issue_receipt
from sealroom.errors import InvalidInput, NotFound, PolicyDenied
from sealroom.statements import (
    Approval,
    ComputationRequest,
    DatasetAttestation,
    InputDecision,
    Policy,
    Signed,
    sign_statement,
)
from sealroom.storage.engine import read_transaction
from sealroom.storage.schema import request_blobs, results
from sealroom.wire import HistoryItem, SealedOutput
from tests.coordinator.coord_helpers import World
from tests.helpers import T0, approval

OPEN_RULES: dict[str, Any] = {"allow": [{"id": "row-count"}], "auto_approve": [{"id": "row-count"}]}


def _room(w: World, rules: dict[str, Any], *, by: Identity | None = None) -> Signed[Policy]:
    who = by or w.requester
    room = sign_statement(Policy(owner=who.party_id, name="room", rules=rules, created_at=T0), who)
    w.c.datasets.put_policy(room.envelope, caller=who.party_id, now=T0)
    return room


def _view(w: World, rid: str, now: int = T0 + 11) -> dict[str, Any]:
    return w.c.requests.get(rid, caller=w.requester.party_id, now=now)


def test_coordinator_room_policy_must_be_stored(w: World) -> None:
    ds = w.publish(w.owner, policy_rules=OPEN_RULES, title="open")
    unstored = sign_statement(
        Policy(owner=w.requester.party_id, name="room", rules=OPEN_RULES, created_at=T0),
        w.requester,
    )
    with pytest.raises(InvalidInput, match="not stored: publish it with POST /v1/policies"):
        w.request((ds,), room_policy=unstored.digest)


def test_coordinator_room_policy_narrows_the_precheck(w: World) -> None:
    ds = w.publish(w.owner, policy_rules=OPEN_RULES, title="open")
    alone = _view(w, w.request((ds,), nonce=1))
    assert alone.status == "pending"
    assert alone.precheck[0].automatic is True
    # A narrower allow list: the dataset's policy alone allows it; with the room it is refused.
    narrow = _room(w, {"allow": [{"id": "topic-overlap"}]})
    view = _view(w, w.request((ds,), nonce=2, room_policy=narrow.digest))
    assert view.status == "rejected"
    assert "(with the room policy) denies it" in view.status_reason
    assert "with the room policy: rule allow: the policy does not allow row-count 1.0.0" in (
        view.status_reason
    )
    assert view.precheck[0].allowed is False
    # A requester allowlist that leaves the requester out also refuses.
    closed = _room(w, {**OPEN_RULES, "requesters": [w.stranger.party_id]})
    view = _view(w, w.request((ds,), nonce=3, room_policy=closed.digest))
    assert view.status == "rejected"
    assert "is not on the policy's allowlist" in view.status_reason


def test_coordinator_room_policy_can_withhold_automatic_approval(w: World) -> None:
    ds = w.publish(w.owner, policy_rules=OPEN_RULES, title="open")
    policy = w.c.datasets.get(ds).policy
    manual = _room(w, {"allow": [{"id": "row-count"}], "k": 50})
    rid = w.request((ds,), room_policy=manual.digest)
    view = _view(w, rid)
    assert view.status == "pending"
    assert view.precheck[0].allowed is True
    assert view.precheck[0].automatic is False
    a = sign_statement(approval(w.owner, rid, ds, mode="policy", policy=policy), w.owner)
    with pytest.raises(PolicyDenied, match="with the room policy"):
        w.c.approvals.approve(rid, a.envelope, caller=w.owner.party_id, now=T0 + 20)


def _run_job(
    w: World, dataset: str, *, room: Signed[Policy] | None = None, done_at: int = T0 + 50
) -> tuple[str, dict[str, Any]]:
    """Request, approve, upload, claim and complete a job; the Job and the final view."""
    evidence = w.register_enclave()
    rid = w.request((dataset,), room_policy=room.digest if room is not None else None)
    a = sign_statement(approval(w.owner, rid, dataset), w.owner)
    w.c.approvals.approve(rid, a.envelope, caller=w.owner.party_id, now=T0 + 20)
    w.c.approvals.upload_input(
        rid, dataset, b"sealed-bytes", enclave=evidence, caller=w.owner.party_id, now=T0 + 30
    )
    enclave = w.enclave.public.party_id
    job = w.c.jobs.claim(caller=enclave, now=T0 + 40)
    assert job is not None
    req = job.request.open(ComputationRequest)
    appr = job.approvals[0].open(Approval)
    att = job.attestations[0].open(DatasetAttestation)
    receipt, _ = issue_receipt(
        w.enclave,
        request=req,
        approvals=[appr],
        attestations=[att],
        outputs={w.requester.party_id: b'{"rows":3}'},
        decisions=[
            InputDecision(
                dataset=att.digest,
                policy=att.statement.policy,
                room_policy=req.statement.room_policy,
                decision="allow",
                automatic=False,
                reasons=("the owner approved by hand",),
                k=5,
                entity_column=None,
                never_output=(),
                join_only=(),
                max_output_rows=None,
                epsilon="0",
                delta="0",
            )
        ],
        issued_at=done_at,
    )
    outputs = [SealedOutput(recipient=w.requester.party_id, sealed=b"ciphertext")]
    view = w.c.jobs.complete(
        rid,
        receipt.envelope,
        outputs,
        caller=enclave,
        charges=[w.charge(rid, att.digest)],
        now=done_at,
    )
    assert view.status == "completed"
    return rid, job


def test_coordinator_job_and_bundle_carry_the_room_policy(w: World) -> None:
    ds = w.publish(w.owner, policy_rules=OPEN_RULES, title="open")
    room = _room(w, {**OPEN_RULES, "k": 20})
    rid, job = _run_job(w, ds, room=room)
    assert job.room_policy.digest == room.digest
    bundle = w.c.requests.bundle(rid, caller=w.requester.party_id, now=T0 + 60)
    carried = bundle.statement(room.digest)
    assert carried is not None
    assert carried.open(Policy).statement.rules == room.statement.rules


def test_coordinator_job_without_room_policy_says_null(w: World) -> None:
    _, job = _run_job(w, w.dataset)
    assert job.room_policy is None


def _counts(w: World, rid: str) -> tuple[int, int]:
    with read_transaction(w.c.state.engine) as conn:
        kept = conn.execute(
            select(func.count()).select_from(results).where(results.c.request == rid)
        ).scalar_one()
        blobs = conn.execute(
            select(func.count()).select_from(request_blobs).where(request_blobs.c.request == rid)
        ).scalar_one()
    return int(kept), int(blobs)


def test_coordinator_results_deleted_after_the_smallest_retention(w: World) -> None:
    ds = w.publish(w.owner, policy_rules={**OPEN_RULES, "retention_seconds": 100}, title="r")
    room = _room(w, {**OPEN_RULES, "retention_seconds": 60})
    rid, _ = _run_job(w, ds, room=room, done_at=T0 + 50)
    me = w.requester.party_id
    assert w.c.requests.result(rid, caller=me, now=T0 + 109).sealed == b"ciphertext"
    assert _counts(w, rid) == (1, 0)  # sealed inputs went when the job ended
    with pytest.raises(NotFound, match=f"deleted by retention at {T0 + 110}") as info:
        w.c.requests.result(rid, caller=me, now=T0 + 110)
    assert "60 s after completion" in (info.value.detail or "")
    assert _counts(w, rid) == (0, 0)
    view = _view(w, rid, now=T0 + 200)
    assert view.status == "completed"
    assert view.history[-1] == HistoryItem(
        status="completed", at=T0 + 110, reason="results deleted after retention of 60 s"
    )
    # Recorded once: later sweeps find nothing to do.
    assert w.c.state.sweep(now=T0 + 500) == 0
    assert len(_view(w, rid, now=T0 + 500).history) == len(view.history)
    # The receipt and bundle stay: only the sealed results are gone.
    assert w.c.requests.bundle(rid, caller=me, now=T0 + 500).receipt is not None


def test_coordinator_results_kept_without_retention(w: World) -> None:
    ds = w.publish(w.owner, policy_rules=OPEN_RULES, title="forever")
    rid, _ = _run_job(w, ds)
    later = T0 + 10 * 366 * 86_400
    assert w.c.state.sweep(now=later) >= 0
    got = w.c.requests.result(rid, caller=w.requester.party_id, now=later)
    assert got.sealed == b"ciphertext"
    assert _counts(w, rid) == (1, 0)


def test_coordinator_sealed_inputs_deleted_when_a_request_fails(w: World) -> None:
    evidence = w.register_enclave()
    rid = w.request((w.dataset,))
    a = sign_statement(approval(w.owner, rid, w.dataset), w.owner)
    w.c.approvals.approve(rid, a.envelope, caller=w.owner.party_id, now=T0 + 20)
    w.c.approvals.upload_input(
        rid, w.dataset, b"sealed-bytes", enclave=evidence, caller=w.owner.party_id, now=T0 + 30
    )
    assert _counts(w, rid) == (0, 1)
    t = T0 + 40
    for claim in range(1, MAX_JOB_ATTEMPTS + 1):
        assert w.c.jobs.claim(caller=w.enclave.public.party_id, now=t) is not None
        t += 301
        view = _view(w, rid, now=t)  # the lease ran out
        if claim < MAX_JOB_ATTEMPTS:
            # Queued again for another worker, its sealed inputs kept.
            assert view.status == "approved", claim
            assert _counts(w, rid) == (0, 1)
    assert view.status == "failed"
    assert _counts(w, rid) == (0, 0)


def test_coordinator_records_each_erasure_it_makes(w: World) -> None:
    """Inputs when the request ends, results at retention: digest, size, time and reason."""
    ds = w.publish(w.owner, policy_rules={**OPEN_RULES, "retention_seconds": 60}, title="r")
    rid, _ = _run_job(w, ds, done_at=T0 + 50)
    me = w.requester.party_id
    first = w.c.deletions.view(rid, caller=me)
    (sealed_input,) = first.erasures
    assert (sealed_input.kind, sealed_input.subject, sealed_input.erased_at) == (
        "sealed-input",
        ds,
        T0 + 50,
    )
    assert sealed_input.reason == "the request ended (completed)"
    w.c.state.sweep(now=T0 + 110)
    erased = w.c.deletions.view(rid, caller=me).erasures
    assert [e.kind for e in erased] == ["sealed-input", "sealed-result"]
    result = erased[1]
    assert (result.subject, result.size, result.erased_at) == (me, len(b"ciphertext"), T0 + 110)
    assert result.sealed == "sha256:" + hashlib.sha256(b"ciphertext").hexdigest()
    assert result.reason == "results deleted after retention of 60 s"
    # Nothing is erased twice, and a stranger sees nothing.
    w.c.state.sweep(now=T0 + 500)
    assert len(w.c.deletions.view(rid, caller=me).erasures) == 2
    with pytest.raises(NotFound):
        w.c.deletions.view(rid, caller=w.stranger.party_id)
