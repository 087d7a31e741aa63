"""The worker loop against an in-memory job source: what it posts for each outcome."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sealroom.crypto.keys import PartyId, PublicIdentity
from sealroom.crypto.release import RELEASE_PURPOSE, unwrap
from sealroom.crypto.sealing import SealContext, open_sealed
from sealroom.enclave.charges import LedgerSource
from sealroom.enclave.state import EnclaveState
from sealroom.enclave.worker import EnclaveWorker, JobSource
from sealroom.errors import BackendUnavailable, Conflict, NotFound, VerificationFailed
from sealroom.statements import Deletion, Envelope, Receipt, ReleasedOutput, sealed_digest
from tests.enclave.enclave_world import (
    NOW,
    REGISTRY,
    WORLD,
    Case,
    build_case,
    seal_input,
    text_table,
)
from tests.helpers import identity


@dataclass(frozen=True)
class Registered:
    evidence: str
    party: str
    tee: str = "simulated"
    simulated: bool = True


@dataclass(frozen=True)
class Input:
    dataset: str


@dataclass(frozen=True)
class Job:
    request: Envelope
    approvals: tuple[Envelope, ...]
    attestations: tuple[Envelope, ...]
    policies: tuple[Envelope, ...]
    inputs: tuple[Input, ...]
    evidence: str
    room_policy: Envelope | None = None
    lease_until: int = NOW + 300
    room: Envelope | None = None
    consents: tuple[Envelope, ...] = ()
    run_approvals: tuple[Envelope, ...] = ()
    org_members: tuple[Envelope, ...] = ()


def job_of(case: Case, evidence: str | None = None) -> Job:
    m = case.materials()
    return Job(
        request=m.request,
        approvals=m.approvals,
        attestations=m.attestations,
        policies=m.policies,
        inputs=tuple(Input(d) for d in case.sealed),
        evidence=evidence or WORLD.enclave.evidence.digest,
    )


@dataclass
class Source:
    """A coordinator reduced to the job-source calls, recording what the worker posts."""

    jobs: list[Job] = field(default_factory=list)
    sealed: dict[str, bytes] = field(default_factory=dict)
    registered_party: str = field(default_factory=lambda: WORLD.enclave.public.party_id)
    fail_claims: int = 0
    calls: list[str] = field(default_factory=list)
    completed: dict[str, tuple[Envelope, Mapping[PartyId, bytes]]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    taken_back: bool = False  # the lease ran out and the job went back to the queue
    input_delay: float = 0.0
    deletions: list[Envelope] = field(default_factory=list)
    deletions_down: int = 0
    inputs_before_outage: int | None = None

    def register_enclave(self, evidence: Envelope, /) -> Registered:
        self.calls.append("register")
        return Registered(evidence=evidence.digest, party=self.registered_party)

    def claim_job(self) -> Job | None:
        self.calls.append("claim")
        if self.fail_claims:
            self.fail_claims -= 1
            raise BackendUnavailable("the coordinator is restarting")
        return self.jobs.pop(0) if self.jobs else None

    def job_input(self, request: str, dataset: str, /) -> bytes:
        self.calls.append(f"input {dataset}")
        if self.inputs_before_outage is not None:
            if self.inputs_before_outage == 0:
                self.inputs_before_outage = None
                raise BackendUnavailable("the coordinator went away")
            self.inputs_before_outage -= 1
        time.sleep(self.input_delay)
        return self.sealed[dataset]

    def complete_job(
        self,
        request: str,
        receipt: Envelope,
        outputs: Mapping[PartyId, bytes],
        charges: Sequence[Envelope] = (),
        /,
    ) -> None:
        self.completed[request] = (receipt, outputs)

    def renew_lease(self, request: str, /) -> None:
        self.calls.append(f"renew {request}")

    # The ledger calls: these tests hand the worker the local ledger instead.
    def ledger(self, dataset: str, /) -> Any:
        raise AssertionError("the in-memory source has no logged ledger")

    def log_key(self) -> Any:
        raise AssertionError("the in-memory source has no log")

    def log_consistency(self, first: int, second: int, /) -> Any:
        raise AssertionError("the in-memory source has no log")

    def record_deletion(self, request: str, deletion: Envelope, /) -> None:
        self.calls.append(f"deletion {request}")
        if self.deletions_down:
            self.deletions_down -= 1
            raise BackendUnavailable("the coordinator is restarting")
        self.deletions.append(deletion)

    def log_checkpoint(self) -> str:
        raise AssertionError("the in-memory source has no log")

    # Commit-then-reveal: what the worker releases, and the parties whose keys it seals to.
    released: dict[str, Mapping[PartyId, bytes]] = field(default_factory=dict)

    def release_job(self, request: str, keys: Mapping[PartyId, bytes], /) -> None:
        self.calls.append(f"release {request}")
        self.released[request] = dict(keys)

    def pending_releases(self) -> Any:
        return SimpleNamespace(releases=())

    def party_identity(self, party: str, /) -> PublicIdentity:
        for p in (WORLD.alice, WORLD.bob, WORLD.carol):
            if p.party_id == party:
                return p.public
        raise NotFound(f"no party {party}")

    def fail_job(self, request: str, reason: str, /) -> None:
        if self.taken_back:
            raise Conflict("the request is approved, not running")
        self.failed[request] = reason


@pytest.fixture
def state(tmp_path: Path) -> Iterator[EnclaveState]:
    own = EnclaveState.in_directory(tmp_path)
    yield own
    own.close()


def worker(source: JobSource, state: EnclaveState, **kw: object) -> EnclaveWorker:
    return EnclaveWorker(
        source=source,
        keys=WORLD.enclave,
        state=state,
        registry=REGISTRY,
        clock=lambda: NOW,
        ledger=state.ledger,
        **kw,  # type: ignore[arg-type]
    )


def test_registers_before_it_claims_and_idles_without_jobs(state: EnclaveState) -> None:
    source = Source()
    assert worker(source, state).step().outcome == "idle"
    assert source.calls == ["register", "claim"]


def test_a_job_completes_with_a_receipt_and_one_sealed_output_per_recipient(
    state: EnclaveState,
) -> None:
    case = build_case()
    source = Source(jobs=[job_of(case)], sealed=dict(case.sealed))
    result = worker(source, state).step()
    assert (result.outcome, result.request) == ("completed", case.request.digest)
    receipt, outputs = source.completed[case.request.digest]
    assert receipt.open(Receipt).statement.request == case.request.digest
    assert set(outputs) == {WORLD.carol.party_id, WORLD.alice.party_id, WORLD.bob.party_id}
    context = SealContext(
        request_digest=bytes.fromhex(case.request.digest.removeprefix("sha256:")),
        recipient=WORLD.carol.party_id,
        purpose="result",
    )
    # Wrapped (commit-then-reveal); the key was released to carol after the completion.
    key = open_sealed(
        source.released[case.request.digest][WORLD.carol.party_id],
        WORLD.carol,
        dataclasses.replace(context, purpose=RELEASE_PURPOSE),
    )
    sealed = unwrap(
        outputs[WORLD.carol.party_id],
        key,
        request=case.request.digest,
        recipient=WORLD.carol.party_id,
    )
    released = ReleasedOutput.from_json(open_sealed(sealed, WORLD.carol, context))
    assert (released.request, released.recipient) == (case.request.digest, WORLD.carol.party_id)
    refs = {o.recipient: o.commitment for o in receipt.open(Receipt).statement.outputs}
    assert refs[WORLD.carol.party_id] == released.commitment()
    assert source.failed == {}


def test_a_job_sealed_to_other_keys_fails_when_its_input_does_not_open(
    state: EnclaveState,
) -> None:
    """Any worker of the deployment may run a job sealed under another worker's evidence (they
    share the keys); inputs sealed to other keys do not open, and nothing is released."""
    case = build_case()
    stranger = identity("another-enclave").public
    table = text_table(["a text sealed to another enclave"])
    sealed = {d: seal_input(table, case.request.digest, to=stranger) for d in case.sealed}
    source = Source(jobs=[job_of(case, evidence="sha256:" + "e" * 64)], sealed=sealed)
    result = worker(source, state).step()
    assert result.outcome == "failed"
    assert source.failed[case.request.digest].startswith("inputs: ")
    assert source.completed == {}


def test_a_refused_job_posts_the_runners_public_reason(state: EnclaveState) -> None:
    case = build_case(bob_texts=("BAD: the secret row 4242",))
    source = Source(jobs=[job_of(case)], sealed=dict(case.sealed))
    result = worker(source, state).step()
    reason = source.failed[case.request.digest]
    assert result.outcome == "failed"
    assert result.reason == reason
    assert reason.startswith("compute: ")
    assert "4242" not in reason


def test_a_failure_the_coordinator_no_longer_takes_leaves_the_job(state: EnclaveState) -> None:
    case = build_case(bob_texts=("BAD: the secret row 4242",))
    source = Source(jobs=[job_of(case)], sealed=dict(case.sealed), taken_back=True)
    result = worker(source, state).step()
    assert (result.outcome, result.request) == ("abandoned", case.request.digest)
    assert source.failed == {}
    assert source.completed == {}


def test_the_lease_is_renewed_while_a_job_runs_and_not_after(state: EnclaveState) -> None:
    case = build_case()
    # A one-second lease is renewed every 0.33 s; the two inputs take 0.8 s to arrive.
    job = dataclasses.replace(job_of(case), lease_until=NOW + 1)
    source = Source(jobs=[job], sealed=dict(case.sealed), input_delay=0.4)
    assert worker(source, state).step().outcome == "completed"
    renewals = [c for c in source.calls if c.startswith("renew")]
    assert len(renewals) >= 1
    time.sleep(0.5)
    assert [c for c in source.calls if c.startswith("renew")] == renewals


def test_a_bug_in_the_loop_fails_the_job_without_detail(state: EnclaveState) -> None:
    case = build_case()
    source = Source(jobs=[job_of(case)], sealed={})  # job_input raises KeyError
    assert worker(source, state).step().outcome == "failed"
    assert source.failed[case.request.digest] == "internal error in the enclave worker"


def test_registration_of_another_party_is_refused(state: EnclaveState) -> None:
    source = Source(registered_party=WORLD.mallory.party_id)
    with pytest.raises(VerificationFailed, match="registered different enclave evidence"):
        worker(source, state).step()
    assert source.calls == ["register"]


def test_an_unreachable_source_is_retried_by_the_loop(state: EnclaveState) -> None:
    case = build_case()
    source = Source(jobs=[job_of(case)], sealed=dict(case.sealed), fail_claims=2)
    events: list[str] = []
    stop = threading.Event()

    def on_event(message: str) -> None:
        events.append(message)
        if message.startswith("completed"):
            stop.set()

    w = worker(source, state, idle_min=0.001, idle_max=0.002, on_event=on_event)
    with pytest.raises(BackendUnavailable):
        w.step()  # one step does not retry: the loop does
    thread = threading.Thread(target=w.run, args=(stop,))
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert case.request.digest in source.completed
    assert sum("coordinator unavailable" in e for e in events) == 1


def test_the_sdk_client_has_every_call_of_a_job_source() -> None:
    # mypy checks the signatures where the CLI hands a Client to the worker; this names them.
    from sealroom.client.http import Client

    calls = sorted(
        name for cls in (JobSource, LedgerSource) for name in vars(cls) if not name.startswith("_")
    )
    assert calls == [
        "claim_job",
        "complete_job",
        "fail_job",
        "job_input",
        "job_input_part",
        "ledger",
        "log_checkpoint",
        "log_consistency",
        "log_key",
        "party_identity",
        "pending_releases",
        "record_deletion",
        "register_enclave",
        "release_job",
        "renew_lease",
    ]
    assert all(callable(getattr(Client, name, None)) for name in calls)


def test_a_completed_job_ends_with_a_signed_deletion_of_what_it_held(state: EnclaveState) -> None:
    case = build_case()
    source = Source(jobs=[job_of(case)], sealed=dict(case.sealed))
    assert worker(source, state).step().outcome == "completed"
    (env,) = source.deletions
    deletion = env.open(Deletion).statement
    receipt_env, _ = source.completed[case.request.digest]
    receipt = receipt_env.open(Receipt).statement
    assert env.signer == WORLD.enclave.public
    assert (deletion.request, deletion.outcome) == (case.request.digest, "completed")
    assert deletion.receipt == receipt_env.digest
    assert deletion.evidence == WORLD.enclave.evidence.digest
    assert deletion.erased_at == NOW
    assert deletion.outputs_held == len(receipt.outputs)
    assert {i.dataset: (i.sealed, i.sealed_size) for i in deletion.inputs} == {
        d: (sealed_digest(b), len(b)) for d, b in case.sealed.items()
    }
    roots = {i.dataset: i.commitment_root for i in receipt.inputs}
    assert {i.dataset: i.commitment_root for i in deletion.inputs} == roots
    # Signed after the result was posted, never before.
    assert source.calls.index(f"deletion {case.request.digest}") == len(source.calls) - 1


def test_a_failed_job_still_signs_its_deletion_without_unverified_roots(
    state: EnclaveState,
) -> None:
    case = build_case(bob_texts=("BAD: the secret row 4242",))
    source = Source(jobs=[job_of(case)], sealed=dict(case.sealed))
    assert worker(source, state).step().outcome == "failed"
    deletion = source.deletions[0].open(Deletion).statement
    assert (deletion.outcome, deletion.receipt, deletion.outputs_held) == ("failed", None, 0)
    assert len(deletion.inputs) == len(case.sealed)
    assert all(i.commitment_root is None for i in deletion.inputs)


def test_a_deletion_the_coordinator_cannot_take_is_posted_on_the_next_step(
    state: EnclaveState,
) -> None:
    case = build_case()
    source = Source(jobs=[job_of(case)], sealed=dict(case.sealed), deletions_down=1)
    w = worker(source, state)
    assert w.step().outcome == "completed"
    assert source.deletions == []
    assert w.step().outcome == "idle"
    assert [d.open(Deletion).statement.request for d in source.deletions] == [case.request.digest]
    assert source.calls.count(f"deletion {case.request.digest}") == 2


def test_a_run_cut_short_by_an_outage_still_accounts_for_what_it_held(
    state: EnclaveState,
) -> None:
    case = build_case()
    source = Source(jobs=[job_of(case)], sealed=dict(case.sealed), inputs_before_outage=1)
    w = worker(source, state)
    with pytest.raises(BackendUnavailable):
        w.step()
    assert source.deletions == []  # the coordinator is away: kept, not posted
    assert w.step().outcome == "idle"
    (env,) = source.deletions
    deletion = env.open(Deletion).statement
    assert (deletion.outcome, deletion.receipt) == ("abandoned", None)
    assert len(deletion.inputs) == 1  # it had downloaded one input when the outage hit
    assert deletion.inputs[0].commitment_root is None


def test_parts_of_a_chunked_input_are_named_as_they_arrive_in_order() -> None:
    """The enclave names a chunked input as the coordinator does (SHA-256 over its parts in
    order, total size): an input never fetched is not claimed, a part fetched again is not
    counted twice, and a job that stops early names the prefix it held."""
    from sealroom.enclave.worker import _HeldParts
    from sealroom.statements import SealedHash

    parts = [os.urandom(n) for n in (1000, 1000, 17)]
    dataset = "sha256:" + "d" * 64
    held: dict[str, SealedHash] = {}
    fetch = _HeldParts(parts.__getitem__, held, dataset)
    assert held == {}
    assert fetch(0) == parts[0]
    assert fetch(0) == parts[0]  # again: the same bytes, hashed once
    assert (held[dataset].digest(), held[dataset].size) == (sealed_digest(parts[0]), 1000)
    assert fetch(2) == parts[2]  # out of order: not part of the in-order stream
    fetch(1)
    fetch(2)
    whole = b"".join(parts)
    assert (held[dataset].digest(), held[dataset].size) == (sealed_digest(whole), len(whole))
