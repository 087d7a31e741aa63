"""A fresh enclave's first checkpoint needs m of n witness cosignatures, fresh against its
evidence, and budget periods run on the witnessed time, not the host's clock.

Real witness processes (``sealroom witness serve``), the real coordinator submitting its
checkpoints to them, and enclave workers with empty state (no trusted checkpoint yet).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sealroom.client.http import Client
from sealroom.coordinator.witnessing import WitnessEndpoint
from sealroom.enclave.charges import TRUST_FILE, CheckpointAnchor
from sealroom.enclave.state import EnclaveState
from sealroom.enclave.worker import EnclaveWorker
from sealroom.statements import BudgetCharge
from sealroom.transparency.cosignature import CosignerKey, WitnessPolicy
from tests.client.log_world import log_signer, serve
from tests.enclave.charges_world import Party, ask, dp_rules, party, publish_pair
from tests.services import enclave_keys
from tests.transparency.witness_helpers import WitnessProcess, init_witness, spawn_witness


@dataclass
class Witnesses:
    policy: WitnessPolicy
    endpoints: list[WitnessEndpoint]


@pytest.fixture
def witnesses(tmp_path: Path) -> Iterator[tuple[Path, Witnesses]]:
    """Two witness processes for the log of the coordinator database ``tmp_path/c.db``."""
    db = tmp_path / "c.db"
    log_key = log_signer(db).verifier.vkey
    vkeys = [init_witness(tmp_path / f"w{i}", f"witness.test/w{i}") for i in range(2)]
    procs: list[WitnessProcess] = [spawn_witness(tmp_path / f"w{i}", [log_key]) for i in range(2)]
    try:
        keys = [CosignerKey.from_vkey(v) for v in vkeys]
        yield (
            db,
            Witnesses(
                WitnessPolicy(tuple(keys), 2),
                [WitnessEndpoint(k, p.url) for k, p in zip(keys, procs, strict=True)],
            ),
        )
    finally:
        for p in procs:
            p.stop()


def worker(
    url: str,
    state: EnclaveState,
    anchor: CheckpointAnchor,
    *,
    evidence_at: int,
    clock_skew: int = 0,
) -> tuple[EnclaveWorker, Client]:
    """A registered worker with empty state, and a client acting as it (to read ledgers)."""
    keys = enclave_keys(now=evidence_at)
    client = Client(base_url=url, identity=keys.identity)
    w = EnclaveWorker(
        source=client,
        keys=keys,
        state=state,
        anchor=anchor,
        clock=lambda: int(time.time()) + clock_skew,
    )
    w.register()
    return w, client


def at(url: str, p: Party) -> Party:
    return Party(p.home, p.identity, Client(base_url=url, identity=p.identity))


def test_a_fresh_enclave_anchors_on_a_witnessed_checkpoint_and_charges_at_witnessed_time(
    tmp_path: Path, witnesses: tuple[Path, Witnesses]
) -> None:
    db, w = witnesses
    with serve(db, w.endpoints) as url:
        owner = party(tmp_path, url, "owner")
        requester = party(tmp_path, url, "requester")
        pair = publish_pair(owner, tmp_path, dp_rules("10"))
        state = EnclaveState.create_temporary()
        try:
            # The host runs the enclave's clock an hour fast: budget periods must not follow it.
            enclave, as_enclave = worker(
                url,
                state,
                CheckpointAnchor(w.policy),
                evidence_at=int(time.time()),
                clock_skew=3600,
            )
            rid = ask(requester, owner, pair)
            step = enclave.step()
            assert (step.outcome, step.request) == ("completed", rid), step.reason
            trust = json.loads((state.directory / TRUST_FILE).read_text())
        finally:
            state.close()
        witnessed = int(trust["checkpoint_time"])
        assert abs(witnessed - time.time()) < 300
        logged = [
            c.envelope.open(BudgetCharge).statement for c in as_enclave.ledger(pair[0]).charges
        ]
        assert [c.request for c in logged] == [rid]
        # charged_at is the witnessed time, not the skewed host clock.
        assert logged[0].charged_at <= witnessed
        assert abs(logged[0].charged_at - time.time()) < 300


def test_too_few_cosignatures_or_a_stale_first_checkpoint_are_refused(
    tmp_path: Path, witnesses: tuple[Path, Witnesses]
) -> None:
    db, w = witnesses
    # The coordinator submits to one witness only; the enclave requires both.
    with serve(db, w.endpoints[:1]) as url:
        owner = party(tmp_path, url, "owner")
        requester = party(tmp_path, url, "requester")
        pair = publish_pair(owner, tmp_path, dp_rules("10"))
        state = EnclaveState.create_temporary()
        try:
            enclave, as_enclave = worker(
                url, state, CheckpointAnchor(w.policy), evidence_at=int(time.time())
            )
            rid = ask(requester, owner, pair)
            step = enclave.step()
            assert (step.outcome, step.request) == ("failed", rid)
            assert step.reason is not None
            assert "1 of the 2 required witness cosignatures" in step.reason
            assert as_enclave.ledger(pair[0]).charges == ()
        finally:
            state.close()

    # Both witnesses cosign, but this enclave's evidence is 120 s older than the witnessed
    # checkpoint and its bound is 30 s: it does not take the coordinator's word for "now".
    with serve(db, w.endpoints) as url:
        state = EnclaveState.create_temporary()
        try:
            enclave, _ = worker(
                url,
                state,
                CheckpointAnchor(w.policy, max_age=30),
                evidence_at=int(time.time()) - 120,
            )
            rid = ask(at(url, requester), at(url, owner), pair)
            step = enclave.step()
            assert (step.outcome, step.request) == ("failed", rid)
            assert step.reason is not None
            assert "first witnessed checkpoint is not fresh" in step.reason
        finally:
            state.close()
