from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Engine

from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.crypto.keys import b64encode
from sealroom.enclave.receipts import issue_receipt
from sealroom.errors import Conflict, InvalidInput, NotFound, PolicyDenied, SignatureInvalid
from sealroom.statements import (
    Approval,
    ComputationRequest,
    DatasetAttestation,
    InputDecision,
    sign_statement,
)
from sealroom.wire import DraftView, JobInput, SealedOutput
from tests.coordinator.coord_helpers import PAIR, REGISTRY, REVEAL, World, make_world
from tests.helpers import T0, approval, identity


def _approve(w: World, rid: str, dataset: str, **kw: Any) -> dict[str, Any]:
    a = sign_statement(approval(w.owner, rid, dataset, **kw), w.owner)
    return w.c.approvals.approve(rid, a.envelope, caller=w.owner.party_id, now=T0 + 20)


def _upload(w: World, rid: str, evidence: str, dataset: str | None = None) -> dict[str, Any]:
    return w.c.approvals.upload_input(
        rid,
        dataset or w.dataset,
        b"sealed-bytes",
        enclave=evidence,
        caller=w.owner.party_id,
        now=T0 + 30,
    )


def _statuses(view: dict[str, Any]) -> list[str]:
    return [h.status for h in view.history]


def _ready(w: World) -> tuple[str, str]:
    evidence = w.register_enclave()
    rid = w.request((w.dataset,))
    _approve(w, rid, w.dataset)
    view = _upload(w, rid, evidence)
    assert view.status == "approved"
    return rid, evidence


def test_coordinator_full_lifecycle_and_bundle(w: World) -> None:
    rid, evidence = _ready(w)
    enclave = w.enclave.public.party_id
    job = w.c.jobs.claim(caller=enclave, now=T0 + 40)
    assert job is not None
    assert job.evidence == evidence
    assert job.inputs == (JobInput(dataset=w.dataset, size=len(b"sealed-bytes")),)
    assert w.c.jobs.job_input(rid, w.dataset, caller=enclave, now=T0 + 41) == b"sealed-bytes"
    assert w.c.jobs.claim(caller=enclave, now=T0 + 41) is None
    req = job.request.open(ComputationRequest)
    appr = job.approvals[0].open(Approval)
    att = job.attestations[0].open(DatasetAttestation)
    receipt, _released = issue_receipt(
        w.enclave,
        request=req,
        approvals=[appr],
        attestations=[att],
        outputs={w.requester.party_id: b'{"rows":3}'},
        decisions=[
            InputDecision(
                dataset=att.digest,
                policy=att.statement.policy,
                room_policy=None,
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
        issued_at=T0 + 50,
    )
    outputs = [SealedOutput(recipient=w.requester.party_id, sealed=b"ciphertext")]
    view = w.c.jobs.complete(
        rid,
        receipt.envelope,
        outputs,
        caller=enclave,
        charges=[w.charge(rid)],
        now=T0 + 50,
    )
    assert view.status == "completed"
    assert view.receipt == receipt.digest
    assert _statuses(view) == ["pending", "approved", "running", "completed"]
    result = w.c.requests.result(rid, caller=w.requester.party_id, now=T0 + 60)
    assert result.sealed == b"ciphertext"
    with pytest.raises(NotFound):
        w.c.requests.result(rid, caller=w.owner.party_id, now=T0 + 60)  # not a recipient
    bundle = w.c.requests.bundle(rid, caller=w.owner.party_id, now=T0 + 60)
    assert bundle.receipt.digest == receipt.digest
    assert {e.digest for e in bundle.log.entries} >= {rid, receipt.digest, w.dataset}
    with pytest.raises(NotFound):
        w.c.requests.bundle(rid, caller=w.stranger.party_id, now=T0 + 60)
    with pytest.raises(Conflict):
        w.c.requests.withdraw(rid, "late", caller=w.requester.party_id, now=T0 + 70)


def test_coordinator_other_party_sees_nothing(w: World) -> None:
    rid = w.request((w.dataset,))
    for fn in (w.c.requests.get, w.c.requests.result, w.c.requests.bundle):
        with pytest.raises(NotFound):
            fn(rid, caller=w.stranger.party_id, now=T0 + 20)
    assert w.c.requests.listing(caller=w.stranger.party_id, role=None, status=None, now=T0) == ()
    assert [v.request for v in w.c.requests.inbox(caller=w.owner.party_id, now=T0 + 20)] == [rid]
    a = sign_statement(approval(w.stranger, rid, w.dataset), w.stranger)
    with pytest.raises(NotFound):
        w.c.approvals.approve(rid, a.envelope, caller=w.stranger.party_id, now=T0)
    with pytest.raises(PolicyDenied):
        w.c.requests.withdraw(rid, "x", caller=w.owner.party_id, now=T0 + 20)


def test_coordinator_approve_twice_and_upload_rules(w: World) -> None:
    evidence = w.register_enclave()
    rid = w.request((w.dataset,))
    with pytest.raises(Conflict):  # upload before approval
        _upload(w, rid, evidence)
    _approve(w, rid, w.dataset)
    with pytest.raises(Conflict):
        _approve(w, rid, w.dataset, reason="again")
    with pytest.raises(InvalidInput):
        _upload(w, rid, "sha256:" + "0" * 64)  # unknown enclave
    _upload(w, rid, evidence)
    with pytest.raises(Conflict):
        _upload(w, rid, evidence)


def test_coordinator_refuses_an_upload_to_evidence_that_went_stale(
    engine: Engine, keystore: CoordinatorKeystore
) -> None:
    """Admission is re-checked at upload: evidence older than the admission's maximum age
    takes no more sealed data, and drops out of the admitted list."""
    w = make_world(engine, keystore, max_evidence_age=25)
    evidence = w.register_enclave()  # made and registered at T0
    rid = w.request((w.dataset,))
    _approve(w, rid, w.dataset)  # at T0 + 20
    assert [e.evidence for e in w.c.jobs.admitted_enclaves(now=T0 + 25).enclaves] == [evidence]
    assert w.c.jobs.admitted_enclaves(now=T0 + 26).enclaves == ()
    with pytest.raises(PolicyDenied, match="enclave admission refused: rule enclave: .*stale"):
        _upload(w, rid, evidence)  # at T0 + 30
    assert w.c.requests.get(rid, caller=w.owner.party_id, now=T0 + 30).inputs[0].sealed is False


def test_coordinator_reject_and_skips_refused(w: World) -> None:
    rid = w.request((w.dataset,))
    view = _approve(w, rid, w.dataset, decision="reject", reason="no")
    assert view.status == "rejected"
    assert "no" in view.status_reason
    enclave = w.enclave.public.party_id
    w.register_enclave()
    assert w.c.jobs.claim(caller=enclave, now=T0 + 40) is None  # pending/rejected are never claimed
    with pytest.raises(NotFound):
        w.c.jobs.fail(rid, "x", caller=enclave, now=T0 + 40)
    with pytest.raises(Conflict):
        w.c.requests.withdraw(rid, "x", caller=w.requester.party_id, now=T0 + 40)


def test_coordinator_withdraw_and_expire(w: World) -> None:
    rid = w.request((w.dataset,))
    view = w.c.requests.withdraw(rid, "changed my mind", caller=w.requester.party_id, now=T0 + 20)
    assert _statuses(view) == ["pending", "withdrawn"]
    rid2 = w.request((w.dataset,), nonce=2)
    view = w.c.requests.get(rid2, caller=w.requester.party_id, now=T0 + 3600)
    assert view.status == "expired"
    with pytest.raises(Conflict):
        _approve(w, rid2, w.dataset)


def test_coordinator_lease_is_renewed_and_a_lapsed_job_is_queued_again(w: World) -> None:
    rid, _ = _ready(w)
    enclave = w.enclave.public.party_id
    job = w.c.jobs.claim(caller=enclave, now=T0 + 40)
    assert job is not None
    assert job.lease_until == T0 + 40 + 300
    # Renewed while it runs: still running after the first lease would have ended.
    assert w.c.jobs.renew(rid, caller=enclave, now=T0 + 300).lease_until == T0 + 600
    view = w.c.requests.get(rid, caller=w.requester.party_id, now=T0 + 400)
    assert view.status == "running"
    with pytest.raises(NotFound):  # only the claimer renews
        w.c.jobs.renew(rid, caller=w.requester.party_id, now=T0 + 400)
    # Not renewed: back in the queue for another worker, not failed.
    view = w.c.requests.get(rid, caller=w.requester.party_id, now=T0 + 601)
    assert view.status == "approved"
    assert "queued again" in (view.status_reason or "")
    with pytest.raises(Conflict):  # the old claim is gone
        w.c.jobs.fail(rid, "late", caller=enclave, now=T0 + 602)
    with pytest.raises(Conflict):
        w.c.jobs.renew(rid, caller=enclave, now=T0 + 602)
    again = w.c.jobs.claim(caller=enclave, now=T0 + 603)
    assert again is not None
    assert again.request.digest == rid


def test_coordinator_only_enclaves_claim(w: World) -> None:
    with pytest.raises(PolicyDenied):
        w.c.jobs.claim(caller=w.requester.party_id, now=T0)


def test_coordinator_request_checks(w: World) -> None:
    with pytest.raises(InvalidInput):  # recipients must follow the release rule
        w.request((w.dataset,), recipients=(w.requester.party_id, w.owner.party_id))
    with pytest.raises(NotFound):
        w.request(("sha256:" + "1" * 64,))
    with pytest.raises(InvalidInput):
        w.request((w.dataset,), expires_at=T0 + 5)
    bad = sign_statement(
        ComputationRequest.model_validate({**_req_fields(w), "requester": w.stranger.party_id}),
        w.stranger,
    )
    with pytest.raises(SignatureInvalid):
        w.c.requests.create(bad.envelope, caller=w.requester.party_id, now=T0)


def _req_fields(w: World) -> dict[str, Any]:
    from tests.coordinator.coord_helpers import ROW_COUNT

    return {
        "requester": w.requester.party_id,
        "computation": ROW_COUNT.ref(),
        "parameters": {},
        "inputs": (w.dataset,),
        "recipients": (w.requester.party_id,),
        "nonce": b64encode(b"\x09" * 16),
        "created_at": T0,
        "expires_at": T0 + 3600,
    }


def test_coordinator_policy_precheck_and_policy_mode(w: World) -> None:
    rules = {
        "allow": [{"id": "row-count"}, {"id": "reveal"}],
        "auto_approve": [{"id": "row-count"}, {"id": "reveal"}],
    }
    ds = w.publish(w.owner, policy_rules=rules, title="with policy")
    policy = w.c.datasets.get(ds).policy
    rid = w.request((ds,))
    view = w.c.requests.get(rid, caller=w.requester.party_id, now=T0 + 11)
    assert view.precheck[0].automatic is True
    view = _approve(w, rid, ds, mode="policy", policy=policy)
    assert view.inputs[0].mode == "policy"
    # content class is never automatic: a "policy" approval is refused
    rid2 = w.request((ds,), computation=REVEAL, nonce=3)
    with pytest.raises(PolicyDenied):
        _approve(w, rid2, ds, mode="policy", policy=policy)
    # a policy that does not allow the computation rejects at once
    ds2 = w.publish(w.owner, policy_rules={"allow": []}, title="closed")
    rid3 = w.request((ds2,), nonce=4)
    view = w.c.requests.get(rid3, caller=w.requester.party_id, now=T0 + 11)
    assert view.status == "rejected"
    assert _statuses(view) == ["pending", "rejected"]


def test_coordinator_precheck_admits_the_request_on_the_attested_schema(
    engine: Engine, keystore: CoordinatorKeystore
) -> None:
    """The computation's own admission (sql-aggregate's grammar) runs at request time, on the
    schema the attestation publishes, and rejects by the same rule the enclave would give."""
    from sealroom.computations import sql_aggregate
    from sealroom.computations.registry import Registry
    from sealroom.statements import Column

    w = make_world(engine, keystore, Registry([*REGISTRY, sql_aggregate.COMPUTATION]))
    rules = {
        "allow": [{"id": "sql-aggregate"}],
        "entity_column": "id",
        "dp": {
            "epsilon_per_requester": "1",
            "epsilon_total": "1",
            "delta_per_requester": "0.00001",
            "delta_total": "0.00001",
        },
        "sql": {"aggregate_columns": ["x"], "dimension_columns": ["g"]},
    }
    schema = (Column(name="id", type="int64"), Column(name="g", type="string"))
    ds = w.publish(
        w.owner, policy_rules=rules, title="sql", schema=(*schema, Column(name="x", type="double"))
    )
    dp = {"epsilon": "1", "delta": "0.000001", "bounds": {"a.x": ["0", "1"]}}

    def ask(sql: str, nonce: int) -> Any:
        rid = w.request(
            (ds,),
            computation=sql_aggregate.COMPUTATION,
            nonce=nonce,
            parameters={"sql": sql, "dp": dp},
        )
        return w.c.requests.get(rid, caller=w.requester.party_id, now=T0 + 11)

    fine = ask("SELECT g, count(*), avg(x) FROM a GROUP BY g", 1)
    assert fine.status == "pending"
    refused = ask("SELECT g, avg(x) FROM a WHERE id <> 7 GROUP BY g", 2)
    assert refused.status == "rejected"
    assert "rule identity-columns: a.id is an identity column" in refused.status_reason
    unbounded = ask("SELECT g, sum(x) FROM a JOIN a ON a.id = a.id GROUP BY g", 3)
    assert "rule declared-tables" in unbounded.status_reason


def test_coordinator_dataset_withdrawal(w: World) -> None:
    rid = w.request((w.dataset,))
    with pytest.raises(PolicyDenied):
        w.c.datasets.withdraw(w.dataset, "x", caller=w.requester.party_id, now=T0)
    view = w.c.datasets.withdraw(w.dataset, "retired", caller=w.owner.party_id, now=T0 + 20)
    assert view.status == "withdrawn"
    req = w.c.requests.get(rid, caller=w.requester.party_id, now=T0 + 21)
    assert req.status == "rejected"
    assert "retired" in req.status_reason
    with pytest.raises(Conflict):
        w.request((w.dataset,), nonce=5)
    with pytest.raises(Conflict):
        w.c.datasets.withdraw(w.dataset, "again", caller=w.owner.party_id, now=T0 + 22)


def test_coordinator_keyword_overlap_alias_equals_request(w: World) -> None:
    other = identity("other-owner")
    ds_b = w.publish(other, title="other")
    out = w.c.requests.keyword_overlap(w.dataset, ds_b, None, caller=w.requester.party_id, now=T0)
    assert isinstance(out, DraftView)
    draft = out.draft
    assert draft["inputs"] == [w.dataset, ds_b]
    assert set(draft["recipients"]) == {w.requester.party_id, w.owner.party_id, other.party_id}
    signed = sign_statement(ComputationRequest.model_validate_json(json.dumps(draft)), w.requester)
    via_alias = w.c.requests.keyword_overlap(
        w.dataset, ds_b, signed.envelope, caller=w.requester.party_id, now=T0 + 1
    )
    assert not isinstance(via_alias, DraftView)
    assert via_alias.created
    assert via_alias.view.request == signed.digest
    again = w.c.requests.create(signed.envelope, caller=w.requester.party_id, now=T0 + 2)
    assert not again.created
    assert again.view == via_alias.view
    assert PAIR.id == draft["computation"]["id"]
    with pytest.raises(InvalidInput):
        w.c.requests.keyword_overlap(
            ds_b, w.dataset, signed.envelope, caller=w.requester.party_id, now=T0
        )
