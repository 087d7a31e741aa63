"""Issue 11, class 7, end to end: DP accounting against a requester who also runs the coordinator.

On main (0bebc30): DP percentiles were calibrated at one row per entity while many rows per
entity went in (a run charged epsilon = 1 cost about 13); an owner could not require DP (the
same request without ``dp`` was answered exactly once the budget was spent); group presence
and ``suppressed_groups`` left outside DP.

Now: the policy's default for a parametrised computation is ``dp: required``, so the exact
request is refused at the pre-check and again in the enclave, before and after the budget
is spent; the release says the contribution bound its noise is calibrated at; and a
coordinator that hands the enclave the same job again (the adversary may run it) gets the
same sealed bytes back, not a fresh noisy draw to average.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from sealroom.crypto.keys import PartyId
from sealroom.crypto.release import RELEASE_PURPOSE, unwrap
from sealroom.crypto.sealing import SealContext, open_sealed
from sealroom.enclave.worker import ClaimedJob, JobSource, RegisteredEnclave
from sealroom.statements import Envelope, ReleasedOutput
from tests.attacks.attack_world import Folder, World, attack_world, auto

BUDGET = {
    "epsilon_per_requester": "3",
    "epsilon_total": "3",
    "delta_per_requester": "0.0001",
    "delta_total": "0.001",
}


def visits() -> list[dict[str, Any]]:
    """60 patients, each with 1 to 12 visits (rows), in three clinics."""
    rows = []
    for p in range(60):
        rows += [
            {"patient": p, "clinic": f"c{p % 3}", "cost": float(40 + (p * 7 + v) % 50)}
            for v in range(1 + p % 12)
        ]
    return rows


def test_dp_is_required_before_and_after_the_budget_is_spent(world: World, files: Folder) -> None:
    victim = world.publish(
        "c7-clinic",
        files.csv("visits", visits()),
        auto("aggregate-stats", k=10, entity_column="patient", dp=BUDGET),
    )
    own = [{"patient": 1000 + i, "clinic": "c0", "cost": 45.0} for i in range(12)]
    mine = world.publish("c7-mallory", files.csv("own", own), auto("aggregate-stats", dp=BUDGET))
    exact = {"value": "cost", "group_by": ["clinic"], "percentiles": [1, 50, 99]}
    assert world.ask("c7-mallory", "aggregate-stats", [victim, mine], exact).refused_by(
        "rule dp-required"
    )
    dp = {"epsilon": "1.5", "delta": "0.00001", "lower": "0", "upper": "100"}
    scales = []
    for m in (1, 3):
        params = {**exact, "dp": {**dp, "max_rows_per_entity": m}}
        released = world.ask("c7-mallory", "aggregate-stats", [victim, mine], params).released
        assert released["dp"]["statistics"] == ["count", "sum", "p1", "p50", "p99"]
        assert released["dp"]["max_rows_per_entity"] == m
        assert released["suppressed_groups"] is None
        assert all(g["stats"]["entities"] is None for g in released["groups"])
        scales.append([float(x) for x in released["dp"]["noise_scales"]])
    # Every statistic, the percentiles included, is calibrated at the contribution bound: an
    # entity allowed three rows gets three times the noise (on main the percentiles were
    # calibrated at one row whatever went in: a run charged 1 cost about 13).
    assert [b / a for a, b in zip(*scales, strict=True)] == pytest.approx([3.0] * 5)
    spent = world.ask("c7-mallory", "aggregate-stats", [victim, mine], {**exact, "dp": dp})
    assert spent.refused_by("rule dp-budget") == "enclave"
    # The budget is gone; the exact question is still refused, by every identity.
    for name in ("c7-mallory", "c7-sybil"):
        again = world.ask(name, "aggregate-stats", [victim, mine], exact)
        assert again.refused_by("rule dp-required") == "coordinator"


class ReplayingCoordinator:
    """The coordinator as the adversary runs it: it hands the enclave its last job again as
    often as it likes, from the statements and ciphertexts it stored, and keeps every
    sealed output the enclave returns (the requester, its accomplice, opens them)."""

    def __init__(self, inner: JobSource) -> None:
        self.inner = inner
        self.job: ClaimedJob | None = None
        self.replays = 0
        self.inputs: dict[tuple[str, str], bytes] = {}
        self.parts: dict[tuple[str, str, int], bytes] = {}
        self.outputs: list[tuple[Envelope, dict[PartyId, bytes]]] = []
        self.forwarded: set[str] = set()
        self.releases: list[tuple[str, dict[PartyId, bytes]]] = []

    def register_enclave(self, evidence: Envelope, /) -> RegisteredEnclave:
        return self.inner.register_enclave(evidence)

    def claim_job(self) -> ClaimedJob | None:
        if self.replays and self.job is not None:
            self.replays -= 1
            return self.job
        self.job = self.inner.claim_job()
        return self.job

    def job_input(self, request: str, dataset: str, /) -> bytes:
        if (request, dataset) not in self.inputs:
            self.inputs[request, dataset] = self.inner.job_input(request, dataset)
        return self.inputs[request, dataset]

    def job_input_part(self, request: str, dataset: str, index: int, /) -> bytes:
        if (request, dataset, index) not in self.parts:
            self.parts[request, dataset, index] = self.inner.job_input_part(request, dataset, index)
        return self.parts[request, dataset, index]

    def renew_lease(self, request: str, /) -> object:
        return self.inner.renew_lease(request)

    def complete_job(
        self,
        request: str,
        receipt: Envelope,
        outputs: Mapping[PartyId, bytes],
        charges: Sequence[Envelope] = (),
        /,
    ) -> object:
        self.outputs.append((receipt, dict(outputs)))
        if request in self.forwarded:
            return None
        self.forwarded.add(request)
        return self.inner.complete_job(request, receipt, outputs, charges)

    def record_deletion(self, request: str, deletion: Envelope, /) -> object:
        return self.inner.record_deletion(request, deletion)

    def fail_job(self, request: str, reason: str, /) -> object:
        return self.inner.fail_job(request, reason)

    def release_job(self, request: str, keys: Mapping[PartyId, bytes], /) -> object:
        self.releases.append((request, dict(keys)))
        return self.inner.release_job(request, keys)

    def pending_releases(self) -> Any:
        return self.inner.pending_releases()

    def party_identity(self, party: str, /) -> Any:
        return self.inner.party_identity(party)

    # The deployment's ledger, as the coordinator serves it (its proofs are checked).
    def ledger(self, dataset: str, /) -> Any:
        return self.inner.ledger(dataset)

    def log_key(self) -> Any:
        return self.inner.log_key()

    def log_checkpoint(self) -> str:
        return self.inner.log_checkpoint()

    def log_consistency(self, first: int, second: int, /) -> Any:
        return self.inner.log_consistency(first, second)


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[World, ReplayingCoordinator]]:
    sources: list[ReplayingCoordinator] = []

    def wrap(inner: JobSource) -> JobSource:
        sources.append(ReplayingCoordinator(inner))
        return sources[0]

    root = tmp_path / "hostile"
    root.mkdir()
    with attack_world(root, wrap=wrap) as w:
        yield w, sources[0]


def test_a_replayed_dp_job_releases_the_same_bytes(
    hostile: tuple[World, ReplayingCoordinator], files: Folder
) -> None:
    world, coordinator = hostile
    salaries = [{"id": i, "salary": 30_000.0 + 997.0 * i} for i in range(50)]
    budget = {"epsilon_per_requester": "1", "epsilon_total": "1"}
    victim = world.publish(
        "c7-hr",
        files.csv("salaries", salaries),
        auto("intersection-sum", entity_column="id", dp=budget),
    )
    mine = world.publish(
        "c7-mallory",
        files.csv("ids", [{"id": i} for i in range(50)]),
        auto("intersection-sum", dp={"epsilon_per_requester": "100", "epsilon_total": "100"}),
    )
    params = {"value": "salary", "value_input": "a", "value_bounds": ["0", "100000"]}
    first = world.ask(
        "c7-mallory", "intersection-sum", [victim, mine], {**params, "dp": {"epsilon": "1"}}
    )
    released = first.released
    # The coordinator replays the job twenty times. The logged ledger already holds the
    # request's charge, so the enclave leaves it (no release at all); an enclave whose ledger
    # did not know would answer with the stored release, never a fresh draw.
    coordinator.replays = 20
    for _ in range(20):
        assert world.worker.step().outcome in ("completed", "abandoned")
    mallory = world.party("c7-mallory").identity
    sums = set()
    receipts = set()
    # Every release key the enclave gave out (the adversary keeps those too).
    keys = {rid: k[PartyId(mallory.party_id)] for rid, k in coordinator.releases}
    for receipt, sealed in coordinator.outputs:
        receipts.add(receipt.digest)
        request_id = json.loads(receipt.payload)["request"]
        digest = bytes.fromhex(request_id.removeprefix("sha256:"))
        key = open_sealed(
            keys[request_id],
            mallory,
            SealContext(request_digest=digest, recipient=mallory.party_id, purpose=RELEASE_PURPOSE),
        )
        plain = open_sealed(
            unwrap(
                sealed[PartyId(mallory.party_id)],
                key,
                request=request_id,
                recipient=mallory.party_id,
            ),
            mallory,
            SealContext(request_digest=digest, recipient=mallory.party_id, purpose="result"),
        )
        sums.add(json.loads(ReleasedOutput.from_json(plain).body)["sum"])
    # One release, once: averaging twenty-one copies of one noisy sum learns nothing more.
    assert sums == {released["sum"]}
    assert len(receipts) == 1
    # And the budget was charged once: a new request finds it spent.
    again = world.ask(
        "c7-mallory", "intersection-sum", [victim, mine], {**params, "dp": {"epsilon": "1"}}
    )
    assert again.refused_by("rule dp-budget")
