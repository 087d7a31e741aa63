"""Policy enforcement in the enclave: composed rules, budgets charged before anything runs."""

from __future__ import annotations

import sys
import tempfile
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pydantic import BaseModel, ConfigDict

from sealroom.computations import Computation, PrivacyContext, PrivacyCost, Registry
from sealroom.crypto.keys import b64encode
from sealroom.enclave.history import SqlReleaseHistory
from sealroom.enclave.ledger import SqlBudgetLedger
from sealroom.enclave.runner import JobFailed, JobMaterials, JobOutput, execute_job
from sealroom.errors import PolicyDenied
from sealroom.statements import Envelope, sign_statement
from tests.enclave.enclave_world import NOW, WORLD, attest, seal_input, sign_policy
from tests.helpers import approval, request


class ProbeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    epsilon: str = "0"
    tag: int = 0


class ProbeOutput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rows: list[int]


CALLS: list[PrivacyContext] = []
_lock = threading.Lock()


def _probe(inputs: Any, params: BaseModel, privacy: PrivacyContext) -> BaseModel:
    with _lock:
        CALLS.append(privacy)
    return ProbeOutput(rows=[t.num_rows for t in inputs])


def _cost(params: BaseModel) -> PrivacyCost:
    assert isinstance(params, ProbeParams)
    return PrivacyCost(epsilon=Decimal(params.epsilon))


PROBE = Computation(
    id="dp-probe",
    version="1.0.0",
    summary="Records the privacy context it is given.",
    privacy_class="aggregate",
    release="requester",
    input_names=("left", "right"),
    params=ProbeParams,
    output=ProbeOutput,
    run_fn=_probe,
    modules=(sys.modules[__name__],),
    cost_fn=_cost,
)
REGISTRY = Registry([PROBE])
TABLE = pa.table({"text": ["a", "b", "c"], "person": ["p1", "p2", "p3"]})

BASE_RULES: dict[str, Any] = {
    "allow": [{"id": "dp-probe"}],
    "auto_approve": [{"id": "dp-probe"}],
    "dp": {"epsilon_per_requester": "1", "epsilon_total": "3"},
}


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()


@pytest.fixture
def ledger() -> Any:
    led, _ = SqlBudgetLedger.temporary()
    yield led
    led.close()


class Job:
    """Alice and Bob, both with policies, asked by Carol to run the probe."""

    def __init__(
        self,
        *,
        alice_rules: dict[str, Any] | None = None,
        bob_rules: dict[str, Any] | None = None,
        epsilon: str = "0.5",
        tag: int = 0,
        room: Envelope | None = None,
    ) -> None:
        w = WORLD
        self.room = room
        self.policies = (
            sign_policy(w.alice, alice_rules or BASE_RULES),
            sign_policy(w.bob, bob_rules or BASE_RULES),
        )
        self.atts = (
            attest(w.alice, TABLE, self.policies[0].digest),
            attest(w.bob, TABLE, self.policies[1].digest),
        )
        self.request = sign_statement(
            request(
                w.carol,
                tuple(a.digest for a in self.atts),
                computation=PROBE.ref(),
                parameters={"epsilon": epsilon, "tag": tag},
                recipients=(w.carol.party_id,),
                nonce=b64encode(tag.to_bytes(16, "big")),
                room_policy=room.digest if room is not None else None,
            ),
            w.carol,
        )
        self.approvals = tuple(
            sign_statement(
                approval(o, self.request.digest, a.digest, mode="policy", policy=p.digest), o
            )
            for o, a, p in zip((w.alice, w.bob), self.atts, self.policies, strict=True)
        )
        self.sealed = {a.digest: seal_input(TABLE, self.request.digest) for a in self.atts}

    def materials(self, **changes: Any) -> JobMaterials:
        fields: dict[str, Any] = {
            "request": self.request.envelope,
            "approvals": tuple(a.envelope for a in self.approvals),
            "attestations": tuple(a.envelope for a in self.atts),
            "policies": tuple(p.envelope for p in self.policies),
            "sealed_inputs": self.sealed,
            "room_policy": self.room,
        }
        fields.update(changes)
        return JobMaterials(**fields)


# Exact releases here are all different shapes of one toy dataset; the difference checks
# have their own tests (tests/enclave/test_enclave_history.py).
HISTORY = SqlReleaseHistory.in_directory(Path(tempfile.mkdtemp(prefix="sealroom-history-")))


def run(materials: JobMaterials, ledger: SqlBudgetLedger, now: int = NOW) -> JobOutput:
    return execute_job(
        materials,
        keys=WORLD.enclave,
        registry=REGISTRY,
        ledger=ledger,
        history=HISTORY,
        now=now,
    )


def test_over_budget_refused_before_anything_is_computed(ledger: SqlBudgetLedger) -> None:
    for tag in (1, 2):
        out = run(Job(tag=tag).materials(), ledger)
        spent = out.receipt.statement.privacy_spent
        assert [(c.epsilon, c.delta) for c in spent] == [("0.5", "0"), ("0.5", "0")]
    assert len(CALLS) == 2
    third = Job(tag=3)
    # Garbage in place of the sealed inputs: had the enclave tried to unseal, it would fail
    # at "inputs"; it fails at "budget", before unsealing or running anything.
    garbage = {d: b"not sealed" for d in third.sealed}
    with pytest.raises(JobFailed) as info:
        run(third.materials(sealed_inputs=garbage), ledger)
    assert info.value.step == "budget"
    assert isinstance(info.value.cause, PolicyDenied)
    assert "per-requester epsilon budget 1 has 0 left; this run needs 0.5" in info.value.reason
    assert len(CALLS) == 2


def test_retry_of_the_same_request_reuses_its_charge(ledger: SqlBudgetLedger) -> None:
    job = Job(epsilon="1", tag=7)
    first = run(job.materials(), ledger)
    again = run(job.materials(), ledger)  # e.g. the worker crashed before completing
    assert again.receipt.statement.privacy_spent == first.receipt.statement.privacy_spent
    assert ledger.spent(dataset=job.atts[0].digest) == (Decimal(1), Decimal(0))
    with pytest.raises(JobFailed, match="budget"):
        run(Job(epsilon="1", tag=8).materials(), ledger)


def test_twenty_concurrent_requests_against_a_budget_for_one(ledger: SqlBudgetLedger) -> None:
    jobs = [Job(epsilon="1", tag=100 + i) for i in range(20)]
    results: list[str] = []
    barrier = threading.Barrier(20)

    def attempt(job: Job) -> None:
        barrier.wait()
        try:
            run(job.materials(), ledger)
            results.append("ok")
        except JobFailed as exc:
            results.append(exc.step)

    threads = [threading.Thread(target=attempt, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["budget"] * 19 + ["ok"]
    assert len(CALLS) == 1


def test_column_rules_reach_the_computation_and_the_receipt(ledger: SqlBudgetLedger) -> None:
    alice = {
        **BASE_RULES,
        "k": 7,
        "entity_column": "person",
        "never_output": ["person", "text"],
        "join_only": ["person"],
        "max_output_rows": 50,
        "sql": {"aggregate_columns": ["text"], "identity_columns": ["person"]},
    }
    job = Job(alice_rules=alice, bob_rules={**BASE_RULES, "max_output_rows": 20})
    out = run(job.materials(), ledger)
    (ctx,) = CALLS
    assert ctx.k == (7, 5)
    assert ctx.entity_columns == ("person", None)
    assert ctx.never_output == (frozenset({"person", "text"}), frozenset())
    assert ctx.join_only == (frozenset({"person"}), frozenset())
    assert ctx.max_output_rows == 20
    assert ctx.cost == PrivacyCost(epsilon=Decimal("0.5"))
    assert ctx.analysis[0] is not None
    assert ctx.analysis[0]["aggregate_columns"] == ["text"]
    assert ctx.analysis[1] is None
    first = out.receipt.statement.decisions[0]
    assert first.dataset == job.atts[0].digest
    assert first.policy == job.policies[0].digest
    assert (first.k, first.entity_column, first.never_output) == (7, "person", ("person", "text"))
    assert (first.epsilon, first.delta, first.automatic) == ("0.5", "0", True)
    assert first.reasons == (
        "the policy admits any requester",
        "the policy allows dp-probe 1.0.0 with differential privacy",
        "dp-probe 1.0.0 spends epsilon 0.5, delta 0 per run, within the per-requester "
        "budget (epsilon 1, delta 0)",
        "the policy approves dp-probe 1.0.0 automatically (k=7)",
    )


def test_expired_policy_denies(ledger: SqlBudgetLedger) -> None:
    job = Job(alice_rules={**BASE_RULES, "expires_at": NOW - 1})
    with pytest.raises(JobFailed) as info:
        run(job.materials(), ledger)
    assert info.value.step == "policies"
    assert f"the policy expired at {NOW - 1} (now {NOW})" in info.value.reason
    assert CALLS == []
    assert ledger.spent(dataset=job.atts[0].digest) == (Decimal(0), Decimal(0))


def test_dp_without_budget_denied_by_policy(ledger: SqlBudgetLedger) -> None:
    no_dp = {k: v for k, v in BASE_RULES.items() if k != "dp"}
    with pytest.raises(JobFailed, match="the policy sets no DP budget") as info:
        run(Job(bob_rules=no_dp).materials(), ledger)
    assert info.value.step == "policies"


def _room(rules: dict[str, Any]) -> Envelope:
    return sign_policy(WORLD.carol, rules, name="room").envelope


def test_room_policy_composes_strictest(ledger: SqlBudgetLedger) -> None:
    room = _room({**BASE_RULES, "k": 40, "never_output": ["secret"]})
    job = Job(room=room)
    out = run(job.materials(), ledger)
    (ctx,) = CALLS
    assert ctx.k == (40, 40)
    assert ctx.never_output == (frozenset({"secret"}), frozenset({"secret"}))
    receipt = out.receipt.statement
    room_digest = Envelope.from_dict(room.to_dict()).digest
    assert all(d.room_policy == room_digest for d in receipt.decisions)
    assert room_digest in receipt.policies


def test_room_policy_can_only_deny_more(ledger: SqlBudgetLedger) -> None:
    room = _room({"allow": [{"id": "something-else"}]})
    with pytest.raises(JobFailed, match=r"with the room policy.*does not allow dp-probe"):
        run(Job(room=room).materials(), ledger)
    room = _room({**BASE_RULES, "dp": {"epsilon_per_requester": "0.1", "epsilon_total": "1"}})
    with pytest.raises(JobFailed, match="more than the per-requester budget"):
        run(Job(room=room).materials(), ledger)
    assert CALLS == []


def test_room_policy_must_be_exactly_the_one_the_request_names(ledger: SqlBudgetLedger) -> None:
    named = _room({**BASE_RULES, "k": 40})
    lax = _room({**BASE_RULES, "k": 2})
    job = Job(room=named)
    # A coordinator that drops the room policy, or swaps in another, is refused.
    with pytest.raises(JobFailed, match="names room policy .*; none given") as info:
        run(job.materials(room_policy=None), ledger)
    assert info.value.step == "policies"
    with pytest.raises(JobFailed, match="is not the one the request names") as info:
        run(job.materials(room_policy=lax), ledger)
    assert info.value.step == "policies"
    # ... and so is one added to a request that names none, even a stricter one.
    with pytest.raises(JobFailed, match="but the request names none"):
        run(Job().materials(room_policy=named), ledger)
    # The named payload re-signed by someone else has the same digest but not its owner's key.
    from tests.enclave.enclave_world import forge

    with pytest.raises(JobFailed, match="but the owner named in the statement"):
        run(job.materials(room_policy=forge(named, WORLD.mallory)), ledger)
    assert CALLS == []
    run(job.materials(), ledger)
    assert CALLS[0].k == (40, 40)


def test_room_policy_can_withhold_automatic_approval(ledger: SqlBudgetLedger) -> None:
    room = _room({"allow": BASE_RULES["allow"], "dp": BASE_RULES["dp"]})
    with pytest.raises(JobFailed, match="does not approve this automatically") as info:
        run(Job(room=room).materials(), ledger)
    assert info.value.step == "approvals"
    assert CALLS == []
