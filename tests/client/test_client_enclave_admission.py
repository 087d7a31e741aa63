"""Issue 12's enclave attacks against the real coordinator over HTTP, with real enclave workers.

An ordinary account registers its own "enclave" (its own simulation root): the
coordinator refuses it. A coordinator that admits it anyway (misconfigured or
hostile) still gets no sealed data from an owner whose policy pins the
deployment's root, and a bundle the stranger's enclave signs is refused by
``sealroom verify`` with the deployment's pins. Stale evidence is refused for
sealing until the enclave re-attests.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sealroom.attestation.pins import DEFAULT_MAX_EVIDENCE_AGE, EnclavePin
from sealroom.attestation.simulated import SimulationRoot
from sealroom.cli.exits import ExitCode
from sealroom.cli.main import app
from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.coordinator.admission import AdmissionPolicy
from sealroom.errors import AttestationInvalid, InvalidInput, PolicyDenied
from sealroom.statements import Approval, sign_statement
from tests.client.client_world import AUTO_POLICY, TOPICS_A, TOPICS_B, now, party, write_jsonl
from tests.services import (
    SIMULATION_ROOT,
    admission,
    coordinator,
    enclave_keys,
    registered_enclave,
)

STRANGER = SimulationRoot.from_private_bytes(hashlib.sha256(b"a stranger's root").digest())
PINNED_POLICY = {**AUTO_POLICY, "enclave": {"simulation_root": SIMULATION_ROOT.public_key.hex()}}


class World:
    """Alice (owner, policy approves topic-overlap automatically) and Bob (requester)."""

    def __init__(self, url: str, tmp_path: Path, alice_policy: dict[str, Any]) -> None:
        self.alice_home, self.alice = party(tmp_path, "alice")
        self.bob_home, self.bob = party(tmp_path, "bob")
        self.a = Client(base_url=url, identity=self.alice)
        self.b = Client(base_url=url, identity=self.bob)
        self.a.register_party("alice")
        self.b.register_party("bob")
        self.mine = flows.publish(
            self.a, self.alice, write_jsonl(tmp_path / "a.jsonl", TOPICS_A), title="A",
            description="", policy_rules=alice_policy, now=now(), home=self.alice_home,
        ).dataset  # fmt: skip
        self.theirs = flows.publish(
            self.b, self.bob, write_jsonl(tmp_path / "b.jsonl", TOPICS_B), title="B",
            description="", policy_rules=None, now=now(), home=self.bob_home,
        ).dataset  # fmt: skip

    def request(self) -> str:
        view = flows.request(
            self.b, self.bob, "topic-overlap", [self.mine, self.theirs], {"top": 5}, now=now()
        )
        return view.request

    def alice_auto(self) -> list[flows.AutoApproval]:
        return flows.auto_approve(
            self.a, self.alice, home=self.alice_home, allow_simulated=True, now=now()
        )

    def bob_approves(self, request: str) -> None:
        flows.approve(
            self.b, self.bob, request, home=self.bob_home, allow_simulated=True, now=now()
        )


def _listed(url: str) -> list[str]:
    return [e.evidence for e in Client(base_url=url).enclaves().enclaves]


def test_an_unadmitted_enclave_cannot_register(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        with pytest.raises(
            PolicyDenied, match="admission refused: rule enclave: .*simulation root"
        ):
            registered_enclave(url, root=STRANGER)
        stale = now() - DEFAULT_MAX_EVIDENCE_AGE - 60
        with pytest.raises(PolicyDenied, match="admission refused: rule enclave: .*stale"):
            registered_enclave(url, now=stale)
        assert _listed(url) == []
        worker = registered_enclave(url)
        assert _listed(url) == [worker.evidence_digest]
        listing = Client(base_url=url).enclaves()
        assert SIMULATION_ROOT.public_key.hex() in listing.admission


def test_a_coordinator_without_an_admission_policy_admits_no_enclave(tmp_path: Path) -> None:
    with coordinator(tmp_path, admit=AdmissionPolicy()) as url:
        with pytest.raises(PolicyDenied, match="no enclave admission policy, so it admits no"):
            registered_enclave(url)
        listing = Client(base_url=url).enclaves()
        assert listing.enclaves == ()
        assert "admits no enclave" in listing.admission


def test_an_unadmitted_enclave_receives_no_sealed_data(tmp_path: Path) -> None:
    """The issue's attack on an honest coordinator: the stranger cannot register, and an
    upload naming its evidence is refused; owners seal to the admitted enclave only."""
    with coordinator(tmp_path) as url:
        w = World(url, tmp_path, PINNED_POLICY)
        honest = registered_enclave(url)
        with pytest.raises(PolicyDenied):
            registered_enclave(url, root=STRANGER)
        request = w.request()
        done = w.alice_auto()
        assert [d.action for d in done] == ["approved"]
        assert done[0].result is not None
        assert done[0].result.enclave == honest.evidence_digest

        # Bob approves by hand but uploads to evidence the coordinator never admitted.
        approval = sign_statement(
            Approval(
                request=request, dataset=w.theirs, approver=w.bob.party_id, decision="approve",
                mode="manual", policy=None, reason="ok", conditions=(), created_at=now(),
            ),
            w.bob,
        )  # fmt: skip
        w.b.post_approval(request, approval.envelope)
        forged = enclave_keys(now=now(), root=STRANGER).evidence.digest
        with pytest.raises(InvalidInput, match="no registered enclave evidence"):
            w.b.upload_input(request, w.theirs, b"sealed", enclave=forged)
        assert not flows.status(w.b, request).inputs[1].sealed


def test_a_hostile_coordinator_gets_no_data_from_a_pinned_owner(tmp_path: Path) -> None:
    """A coordinator that admits the stranger's enclave (hostile or misconfigured): Alice's
    policy pins the deployment's root, so her client refuses to seal, and signs nothing."""
    with coordinator(tmp_path, admit=admission(STRANGER)) as url:
        w = World(url, tmp_path, PINNED_POLICY)
        registered_enclave(url, root=STRANGER)
        request = w.request()
        with pytest.raises(
            AttestationInvalid,
            match="no admitted enclave satisfies your pins: .*rule enclave: the evidence does "
            "not satisfy the pin",
        ):
            w.alice_auto()
        mine = flows.status(w.a, request).inputs[0]
        assert (mine.decision, mine.sealed) == ("pending", False)
        # The same pin given as a client option (a policy without a pin) refuses too.
        with pytest.raises(AttestationInvalid, match="no admitted enclave satisfies your pins"):
            flows.auto_approve(
                w.a, w.alice, home=w.alice_home, allow_simulated=True, now=now(),
                simulation_root=SIMULATION_ROOT.public_key,
            )  # fmt: skip


def test_a_bundle_from_a_strangers_enclave_is_refused_by_verify_with_the_pins(
    tmp_path: Path,
) -> None:
    """No pin anywhere on the owner's side: the hostile coordinator's stranger enclave runs
    the job (and could have made up any result). ``verify --allow-simulated --log-key``
    alone cannot tell (it warns that the root is not pinned); with the deployment's root
    (``--simulation-root``) the bundle is refused."""
    with coordinator(tmp_path, admit=admission(STRANGER)) as url:
        w = World(url, tmp_path, AUTO_POLICY)
        stranger = registered_enclave(url, root=STRANGER)
        request = w.request()
        done = w.alice_auto()
        assert done[0].result is not None
        assert any("pinned on first use" in x for x in done[0].result.warnings)
        w.bob_approves(request)
        assert stranger.step().outcome == "completed"
        got = flows.fetch_result(
            w.b, w.bob, request, tmp_path / "out", home=w.bob_home, allow_simulated=True
        )
        log_key = w.b.log_key().verifier_key
    bundle = str(got.bundle_path)
    unpinned = CliRunner().invoke(
        app, ["verify", bundle, "--allow-simulated", "--log-key", log_key, "--json"]
    )
    assert unpinned.exit_code == 0, unpinned.output
    assert any("not pinned" in x for x in json.loads(unpinned.output)["warnings"])
    root = SIMULATION_ROOT.public_key.hex()
    args = ["verify", bundle, "--allow-simulated", "--log-key", log_key, "--simulation-root", root]
    refused = CliRunner().invoke(app, [*args, "--json"])
    assert refused.exit_code == ExitCode.VERIFICATION_FAILED, refused.output
    failed = [c for c in json.loads(refused.output)["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["TEE evidence"]
    assert "simulation root" in failed[0]["detail"]


def test_stale_evidence_is_refused_for_sealing_until_the_enclave_reattests(
    tmp_path: Path,
) -> None:
    """The coordinator admits evidence up to a week old; Alice's policy accepts a day
    (the default). Her client judges the evidence now, not as of its own date."""
    week = AdmissionPolicy(
        pin=EnclavePin(simulation_root=SIMULATION_ROOT.public_key, max_evidence_age=7 * 86400)
    )
    with coordinator(tmp_path, admit=week) as url:
        w = World(url, tmp_path, PINNED_POLICY)
        worker = registered_enclave(url, now=now() - 2 * 86400)
        old = worker.evidence_digest
        request = w.request()
        with pytest.raises(AttestationInvalid, match=r"rule enclave: the evidence is stale"):
            w.alice_auto()
        assert flows.status(w.a, request).inputs[0].decision == "pending"

        # Its next step re-attests (same keys, fresh evidence) before claiming anything.
        assert worker.step().outcome == "idle"
        assert worker.evidence_digest != old
        assert _listed(url) == [worker.evidence_digest, old]
        done = w.alice_auto()
        assert done[0].result is not None
        assert done[0].result.enclave == worker.evidence_digest
        w.bob_approves(request)
        assert worker.step().outcome == "completed"
        bundle = w.b.bundle(request)
        assert bundle.evidence.digest == worker.evidence_digest


def test_a_pinned_measurement_refuses_a_simulated_enclave_with_the_rule(tmp_path: Path) -> None:
    tdx_only = {**AUTO_POLICY, "enclave": {"measurements": {"compose_hash": ["ab" * 32]}}}
    with coordinator(tmp_path) as url:
        w = World(url, tmp_path, tdx_only)
        registered_enclave(url)
        request = w.request()
        with pytest.raises(
            AttestationInvalid,
            match="rule enclave: simulated evidence, but no simulation root is pinned "
            r"\(the pin accepts TDX measurements compose_hash in \{abababababab...\}\)",
        ):
            w.alice_auto()
        assert flows.status(w.a, request).inputs[0].decision == "pending"


def test_a_job_sealed_to_earlier_evidence_still_runs_after_reattestation(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        w = World(url, tmp_path, PINNED_POLICY)
        # Registered with evidence from 5 s ago, re-attested on every step: the new evidence
        # is dated now, so it differs (evidence made in the same second would be the same).
        worker = registered_enclave(url, reattest_after=0, now=int(time.time()) - 5)
        first = worker.evidence_digest
        request = w.request()
        w.alice_auto()
        w.bob_approves(request)
        assert worker.step().outcome == "completed"
        assert worker.evidence_digest != first
        bundle = w.b.bundle(request)
        assert bundle.evidence.digest == first  # the evidence the owners checked and sealed to
        assert first in _listed(url)
