"""The deployment's budget ledger with a real coordinator: restarts, other instances and deleted
state cannot reset a budget, and a replayed job cannot produce a second release.

Restarts and fresh state directories are real ``sealroom enclave --once`` processes sharing a
deployment secret; the hostile coordinator (replaying a job, hiding a charge) is the real one
behind a proxy that rewrites what the enclave is told.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.crypto.keys import PartyId
from sealroom.enclave.state import EnclaveState
from sealroom.statements import BudgetCharge, Envelope, Receipt
from sealroom.verification.bundle import ProofBundle
from sealroom.wire import JobView, LedgerView
from tests.enclave.charges_world import (
    ask,
    deployment_keys,
    dp_rules,
    in_process_worker,
    party,
    publish_pair,
    run_once,
    write_secret,
)
from tests.services import coordinator, registered_enclave


def _charges(client: Client, dataset: str) -> list[BudgetCharge]:
    return [c.envelope.open(BudgetCharge).statement for c in client.ledger(dataset).charges]


def test_restart_fresh_state_and_a_second_instance_cannot_reset_a_budget(
    tmp_path: Path,
) -> None:
    with coordinator(tmp_path) as url:
        owner = party(tmp_path, url, "owner")
        requester = party(tmp_path, url, "requester")
        secret = write_secret(tmp_path / "deployment.secret")
        keys = deployment_keys(secret)
        Client(base_url=url, identity=keys.identity).register_enclave(keys.evidence.envelope)
        pair = publish_pair(owner, tmp_path, dp_rules("2"))
        ds = pair[0]
        state = tmp_path / "state-1"

        first = ask(requester, owner, pair)
        assert run_once(url, secret=secret, state=state)["outcome"] == "completed"
        # Another process with its own, empty state directory spends the rest.
        second = ask(requester, owner, pair)
        out = run_once(url, secret=secret, state=tmp_path / "state-2")
        assert (out["outcome"], out["request"]) == ("completed", second)
        # The first process restarted, then one with no state at all: nothing is left.
        for again_state in (state, None):
            rid = ask(requester, owner, pair)
            out = run_once(url, secret=secret, state=again_state)
            assert (out["outcome"], out["request"]) == ("failed", rid)
            assert "budget" in out["reason"]
            assert "epsilon" in out["reason"]

        # A second instance with keys of its own: owners seal to it, and it sees the same ledger.
        other_state = EnclaveState.create_temporary()
        other = registered_enclave(url, state=other_state)
        try:
            rid = ask(requester, owner, pair)
            step = other.step()
            assert (step.outcome, step.request) == ("failed", rid)
            assert step.reason is not None
            assert "budget" in step.reason
        finally:
            other_state.close()

        charges = _charges(Client(base_url=url, identity=keys.identity), ds)
        assert [c.request for c in charges] == [first, second]
        assert [c.epsilon for c in charges] == ["1", "1"]

        # The owner sealed to the deployment's first evidence; a worker with evidence of its own
        # ran the job: the receipt names that worker's evidence, and the bundle verifies.
        fetched = flows.fetch_result(
            requester.client,
            requester.identity,
            second,
            tmp_path / "result",
            home=requester.home,
            allow_simulated=True,
        )
        assert fetched.report.failures == ()
        receipt = ProofBundle.from_json(fetched.bundle_path.read_bytes()).receipt
        assert receipt.open(Receipt).statement.evidence != keys.evidence.digest
        spent = receipt.open(Receipt).statement.privacy_spent
        assert {(c.dataset, c.epsilon) for c in spent} == {(d, "1") for d in pair}


@dataclasses.dataclass
class HostileCoordinator:
    """The real coordinator, except for what a hostile one could change: it replays the job it
    handed out last, and can hide the newest charge of a ledger."""

    inner: Client
    replay: JobView | None = None
    inputs: dict[tuple[str, str], bytes] = dataclasses.field(default_factory=dict)
    parts: dict[tuple[str, str, int], bytes] = dataclasses.field(default_factory=dict)
    completions: list[str] = dataclasses.field(default_factory=list)
    releases: list[tuple[str, dict[PartyId, bytes]]] = dataclasses.field(default_factory=list)
    hide_newest_charge: bool = False
    # Called once, before the first completion is forwarded (another worker gets there first).
    before_complete: Callable[[], object] | None = None

    def register_enclave(self, evidence: Envelope, /) -> Any:
        return self.inner.register_enclave(evidence)

    replaying: bool = False

    def claim_job(self) -> JobView | None:
        if self.replaying and self.replay is not None:
            return self.replay
        job = self.inner.claim_job()
        self.replay = job or self.replay
        return job

    def job_input(self, request: str, dataset: str, /) -> bytes:
        key = (request, dataset)
        if key not in self.inputs:
            self.inputs[key] = self.inner.job_input(request, dataset)
        return self.inputs[key]

    def job_input_part(self, request: str, dataset: str, index: int, /) -> bytes:
        key = (request, dataset, index)
        if key not in self.parts:
            self.parts[key] = self.inner.job_input_part(request, dataset, index)
        return self.parts[key]

    def renew_lease(self, request: str, /) -> object:
        return None

    def complete_job(
        self,
        request: str,
        receipt: Envelope,
        outputs: Mapping[PartyId, bytes],
        charges: Sequence[Envelope] = (),
        /,
    ) -> object:
        self.completions.append(request)
        if self.before_complete is not None:
            hook, self.before_complete = self.before_complete, None
            hook()
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

    def ledger(self, dataset: str, /) -> LedgerView:
        view = self.inner.ledger(dataset)
        if self.hide_newest_charge and view.charges:
            return view.model_copy(update={"charges": view.charges[:-1]})
        return view

    def log_key(self) -> Any:
        return self.inner.log_key()

    def log_checkpoint(self) -> str:
        return self.inner.log_checkpoint()

    def log_consistency(self, first: int, second: int, /) -> Any:
        return self.inner.log_consistency(first, second)


def test_the_same_job_replayed_200_times_is_released_once(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        owner = party(tmp_path, url, "owner")
        requester = party(tmp_path, url, "requester")
        keys = deployment_keys(write_secret(tmp_path / "deployment.secret"))
        state = EnclaveState.create_temporary()
        try:
            hostile = HostileCoordinator(Client(base_url=url, identity=keys.identity))
            worker = in_process_worker(url, keys, state, source=hostile)
            pair = publish_pair(owner, tmp_path, dp_rules("1000"))
            ds = pair[0]
            rid = ask(requester, owner, pair)
            assert worker.step().outcome == "completed"
            hostile.replaying = True
            outcomes = {worker.step().outcome for _ in range(200)}
        finally:
            state.close()
        # Every replay was refused inside the enclave, before computing: nothing new was even
        # handed to the coordinator, which could have kept it.
        assert outcomes == {"abandoned"}
        assert hostile.completions == [rid]
        assert [c.request for c in _charges(hostile.inner, ds)] == [rid]


def test_a_coordinator_hiding_a_charge_it_showed_is_caught(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        owner = party(tmp_path, url, "owner")
        requester = party(tmp_path, url, "requester")
        keys = deployment_keys(write_secret(tmp_path / "deployment.secret"))
        state = EnclaveState.create_temporary()
        try:
            hostile = HostileCoordinator(Client(base_url=url, identity=keys.identity))
            worker = in_process_worker(url, keys, state, source=hostile)
            pair = publish_pair(owner, tmp_path, dp_rules("3"))
            ask(requester, owner, pair)
            assert worker.step().outcome == "completed"
            ask(requester, owner, pair)
            assert worker.step().outcome == "completed"  # both charges seen by this enclave
            # Hiding the newest would leave budget for one more run; the enclave refuses.
            hostile.hide_newest_charge = True
            rid = ask(requester, owner, pair)
            step = worker.step()
        finally:
            state.close()
        assert (step.outcome, step.request) == ("failed", rid)
        assert step.reason is not None
        assert "hid or rewrote" in step.reason


def test_two_workers_charging_one_head_serialise_and_the_loser_runs_again(
    tmp_path: Path,
) -> None:
    """Both workers read the same head; the second to post is refused (stale head), reads the
    ledger again, recomputes and completes on the new head: no budget is spent twice."""
    with coordinator(tmp_path) as url:
        owner = party(tmp_path, url, "owner")
        requester = party(tmp_path, url, "requester")
        secret = write_secret(tmp_path / "deployment.secret")
        states = [EnclaveState.create_temporary() for _ in range(2)]
        events: list[str] = []
        try:
            keys = [deployment_keys(secret) for _ in range(2)]
            hostile = HostileCoordinator(Client(base_url=url, identity=keys[0].identity))
            slow = in_process_worker(
                url, keys[0], states[0], source=hostile, on_event=events.append
            )
            fast = in_process_worker(url, keys[1], states[1])
            pair = publish_pair(owner, tmp_path, dp_rules("2"))
            first = ask(requester, owner, pair)
            second = ask(requester, owner, pair)
            # The slow worker has run `first` on the empty ledger when the fast one completes
            # `second`, moving both heads.
            hostile.before_complete = lambda: fast.step()
            step = slow.step()
        finally:
            for st in states:
                st.close()
        assert (step.outcome, step.request) == ("completed", first)
        assert any("another charge came first" in e for e in events)
        assert hostile.completions == [first, first]
        for ds in pair:
            chain = _charges(hostile.inner, ds)
            assert [c.request for c in chain] == [second, first]
            assert [c.seq for c in chain] == [0, 1]
