"""Witnessed checkpoints end to end: witness processes, a coordinator that submits to them, a
client that requires m of n, bundles that carry the cosignatures, ``sealroom verify``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sealroom.cli.exits import ExitCode
from sealroom.client import flows
from sealroom.client.checkpoints import TrustedLog
from sealroom.client.http import Client
from sealroom.coordinator.witnessing import WitnessEndpoint
from sealroom.crypto.keys import Identity
from sealroom.enclave.state import EnclaveState
from sealroom.enclave.worker import EnclaveWorker
from sealroom.errors import ProofInvalid
from sealroom.transparency.cosignature import CosignerKey, WitnessPolicy, cosignatures
from tests.client.client_world import AUTO_POLICY, TOPICS_B, now, party, write_jsonl
from tests.client.log_world import fork, log_signer, publish, serve, snapshot
from tests.services import enclave_keys
from tests.transparency.witness_helpers import cli, init_witness, spawn_witness


def test_m_of_n_witnesses_from_witness_processes_to_verify(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    log_key = log_signer(db).verifier.vkey
    vkeys = [init_witness(tmp_path / f"w{i}", f"witness.test/w{i}") for i in range(3)]
    keys = [CosignerKey.from_vkey(v) for v in vkeys]
    witnesses = [spawn_witness(tmp_path / f"w{i}", [log_key]) for i in range(3)]
    endpoints = [WitnessEndpoint(k, w.url) for k, w in zip(keys, witnesses, strict=True)]
    home, alice = party(tmp_path, "alice")
    try:
        # The coordinator submits to one witness only: a client requiring 2 of 3 refuses.
        with serve(db, endpoints[:1]) as url:
            client = Client(base_url=url, identity=alice)
            client.register_party("alice")
            named = [arg for v in vkeys for arg in ("--witness", v)]
            required = cli(
                "checkpoint", "require", "--url", url, "--home", str(home), *named,
                "--witnesses-required", "2",
            )  # fmt: skip
            assert required.returncode == 0, required.stderr
            with pytest.raises(ProofInvalid, match="1 of the 2 required witness cosignatures"):
                publish(client, alice, home, "one")
            assert not list((home / "checkpoints").glob("*.note"))  # nothing was trusted

        # With two witnesses, the same client accepts, and keeps the cosigned checkpoint.
        with serve(db, endpoints[:2]) as url:
            client = Client(base_url=url, identity=alice)
            snapshot(db, tmp_path / "fork.db")
            done = publish(client, alice, home, "two")
            note = (home / "checkpoints").glob("*.note").__next__().read_text()
            found = cosignatures(note, keys)
            assert {c.witness.name for c in found} == {"witness.test/w0", "witness.test/w1"}
            job_bundle = _run_a_job(tmp_path, url, client, alice, home, done.dataset)

            # The log grows past the bundle; the party's trusted checkpoint follows it.
            publish(client, alice, home, "extra")
            at = ["--url", url, "--home", str(home)]
            shown = cli("checkpoint", "show", *at, "--json")
            assert shown.returncode == 0, shown.stderr
            doc = json.loads(shown.stdout)
            assert len(doc["cosigned_by"]) == 2
            trusted = doc["file"]
            older = cli("verify", str(job_bundle / "bundle.json"), "--allow-simulated",
                        "--checkpoint", trusted)  # fmt: skip
            assert older.returncode == ExitCode.VERIFICATION_FAILED
            assert "carries no consistency proof" in older.stdout
            proved = tmp_path / "proved.json"
            added = cli("checkpoint", "prove", str(job_bundle / "bundle.json"), "--out",
                        str(proved), *at)  # fmt: skip
            assert added.returncode == 0, added.stderr

        # Offline: the bundle carries the cosignatures; verify checks m of n and consistency.
        base = ["verify", str(proved), "--allow-simulated", "--json"]
        ok = cli(*base, "--checkpoint", str(trusted), *named, "--witnesses-required", "2")
        assert ok.returncode == 0, ok.stdout
        checks = {c["name"]: c for c in json.loads(ok.stdout)["checks"]}
        assert checks["witness cosignatures"]["passed"]
        assert "2 of the 3 named witnesses" in checks["witness cosignatures"]["detail"]
        assert checks["log consistency"]["passed"]
        strict = cli(*base, *named)  # all three required by default
        assert strict.returncode == ExitCode.VERIFICATION_FAILED
        failed = [c for c in json.loads(strict.stdout)["checks"] if not c["passed"]]
        assert [c["name"] for c in failed] == ["witness cosignatures"]
        assert "2 of the 3 required" in failed[0]["detail"]
        plain = cli(*base)
        assert plain.returncode == 0
        assert "witness cosignatures" not in plain.stdout

        # A fork of the log: the witnesses refuse it, so a new client requiring them is not
        # fooled even on first use (it has no checkpoint of its own to compare with).
        fork(tmp_path / "fork.db", 50)  # beyond the honest size, so the witnesses are asked
        with serve(tmp_path / "fork.db", endpoints[:2]) as fork_url:
            carol_home = tmp_path / "carol"
            carol = Client(base_url=fork_url)
            TrustedLog(carol, carol_home).require_witnesses(WitnessPolicy.parse(vkeys, 2))
            with pytest.raises(ProofInvalid, match="0 of the 2 required"):
                TrustedLog(carol, carol_home).latest()
        assert any(
            (tmp_path / f"w{i}" / "witness-state" / "evidence").glob("*.json") for i in range(2)
        )

        # A witness goes down: new checkpoints carry one cosignature, and are refused.
        witnesses[1].kill()
        with serve(db, endpoints[:2]) as url:
            client = Client(base_url=url, identity=alice)
            with pytest.raises(ProofInvalid, match="1 of the 2 required"):
                publish(client, alice, home, "three")
    finally:
        for w in witnesses:
            w.stop()


def _run_a_job(
    tmp_path: Path, url: str, alice_client: Client, alice: Identity, alice_home: Path, mine: str
) -> Path:
    """A topic overlap between alice's dataset and a new one of bob's; bob's bundle dir."""
    bob_home, bob = party(tmp_path, "bob")
    b = Client(base_url=url, identity=bob)
    b.register_party("bob")
    theirs = flows.publish(
        b,
        bob,
        write_jsonl(tmp_path / "bob.jsonl", TOPICS_B),
        title="bob",
        description="notes",
        policy_rules=AUTO_POLICY,
        now=now(),
        home=bob_home,
    )
    keys = enclave_keys(now=now())
    state = EnclaveState.create_temporary()
    worker = EnclaveWorker(
        source=Client(base_url=url, identity=keys.identity), keys=keys, state=state
    )
    try:
        worker.register()
        view = flows.request(
            alice_client, alice, "topic-overlap", [mine, theirs.dataset], {}, now=now(),
            home=alice_home,
        )  # fmt: skip
        flows.approve(
            alice_client, alice, view.request, home=alice_home, allow_simulated=True, now=now()
        )
        flows.auto_approve(b, bob, home=bob_home, allow_simulated=True, now=now())
        step = worker.step()
        assert step.outcome == "completed", step.reason
    finally:
        state.close()
    out = tmp_path / "alice-out"
    flows.fetch_result(
        alice_client, alice, view.request, out, home=alice_home, allow_simulated=True
    )
    return out
