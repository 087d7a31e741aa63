"""``--pccs-url`` / ``$SEALROOM_PCCS_URL``: where an owner's live enclave checks get collateral."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sealroom.cli.exits import ExitCode
from sealroom.cli.main import app
from tests.services import coordinator

runner = CliRunner()


@pytest.mark.parametrize("command", ["inbox", "approve", "watch", "ui", "mcp"])
def test_every_command_that_checks_evidence_live_takes_a_pccs(command: str) -> None:
    res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.stdout
    assert "--pccs-url" in res.stdout
    assert "SEALROOM_PCCS_URL" in res.stdout


def test_a_malformed_pccs_url_is_refused_before_anything_is_done(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        env = {"SEALROOM_HOME": str(tmp_path / "alice"), "SEALROOM_URL": url}
        res = runner.invoke(app, ["init", "--unencrypted-keystore", "--name", "alice"], env=env)
        assert res.exit_code == 0, res.stdout + res.stderr
        bad = runner.invoke(app, ["inbox", "--pccs-url", "pccs.example", "--json"], env=env)
        assert bad.exit_code == ExitCode.ERROR
        assert "PCCS URL must be an http(s) URL" in bad.stdout + bad.stderr
        from_env = runner.invoke(app, ["inbox", "--json"], env={**env, "SEALROOM_PCCS_URL": "x"})
        assert from_env.exit_code == ExitCode.ERROR
        assert "PCCS URL" in from_env.stdout + from_env.stderr
        # A well-formed PCCS is asked only when evidence is checked: an empty inbox is fine.
        good = runner.invoke(app, ["inbox", "--pccs-url", "http://127.0.0.1:9", "--json"], env=env)
        assert good.exit_code == ExitCode.OK, good.stdout + good.stderr
        assert json.loads(good.stdout)["items"] == []


def test_approve_fails_closed_on_the_owners_pccs(
    tmp_path: Path, vectors: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An owner approves with --pccs-url while the coordinator lists a TDX enclave whose host
    sends "UpToDate" collateral: an unreachable PCCS exits 9, a PCCS saying the platform is
    out of date exits 8, and nothing is approved or uploaded either way.

    The coordinator is real; its enclave listing is replaced in this process (the client
    trusts no listing anyway), and only dcap-qvl's verdict is stubbed (see
    tests/attestation/pccs_server.py)."""
    import time

    from sealroom.client.http import Client
    from sealroom.enclave.keys import EnclaveKeys
    from sealroom.wire import EnclaveView
    from sealroom.wire.jobs import EnclaveList
    from tests.attestation import conftest as attestation_conftest
    from tests.attestation.pccs_server import (
        install_verdict_from_collateral,
        loopback_pccs,
        with_tcb_status,
    )
    from tests.attestation.test_dcap import DSTACK_COMPOSE_HASH
    from tests.attestation.test_pins import measurements_of
    from tests.client.client_world import AUTO_POLICY, TOPICS_A, TOPICS_B, write_jsonl
    from tests.client.test_client_trust_collateral import RecordedTdx

    recording = attestation_conftest.dstack_recording.__wrapped__(vectors)
    collateral = (vectors / "dcap" / "tdx_quote_collateral.json").read_text()
    seen = install_verdict_from_collateral(monkeypatch)
    keys = EnclaveKeys.create_at_time(
        RecordedTdx(recording, collateral), tee="tdx", now=int(time.time())
    )
    evidence = keys.evidence
    listing = EnclaveList(
        enclaves=(
            EnclaveView(
                evidence=evidence.digest,
                envelope=evidence.envelope,
                tee="tdx",
                simulated=False,
                party=keys.public.party_id,
                log_index=0,
                created_at=evidence.statement.created_at,
            ),
        ),
        admission="test listing",
    )
    monkeypatch.setattr(Client, "enclaves", lambda self: listing)
    # Alice's policy pins exactly the recorded app, so only the collateral can refuse it.
    pin = {"measurements": measurements_of(recording, DSTACK_COMPOSE_HASH)}

    with coordinator(tmp_path) as url:
        env = {
            name: {"SEALROOM_HOME": str(tmp_path / name), "SEALROOM_URL": url}
            for name in ("alice", "bob")
        }
        for name, e in env.items():
            res = runner.invoke(app, ["init", "--unencrypted-keystore", "--name", name], env=e)
            assert res.exit_code == 0, res.stdout + res.stderr
        policy = tmp_path / "policy.json"
        policy.write_text(json.dumps({**AUTO_POLICY, "enclave": pin}))
        a = _ok(
            env["alice"],
            "dataset",
            "publish",
            str(write_jsonl(tmp_path / "a.jsonl", TOPICS_A)),
            "--policy",
            str(policy),
        )
        b = _ok(env["bob"], "dataset", "publish", str(write_jsonl(tmp_path / "b.jsonl", TOPICS_B)))
        rid = _ok(
            env["bob"],
            "request",
            "topic-overlap",
            "--dataset",
            a["dataset"],
            "--dataset",
            b["dataset"],
        )["request"]

        down = runner.invoke(
            app, ["approve", rid, "--pccs-url", _closed_port_url(), "--json"], env=env["alice"]
        )
        assert down.exit_code == ExitCode.UNAVAILABLE, down.stdout + down.stderr
        assert json.loads(down.stdout)["error"]["code"] == "backend_unavailable"
        assert "could not fetch collateral" in down.stderr
        assert "fail closed" in down.stderr

        with loopback_pccs(with_tcb_status(collateral, "OutOfDate")) as pccs:
            stale = runner.invoke(
                app, ["approve", rid, "--json"], env={**env["alice"], "SEALROOM_PCCS_URL": pccs.url}
            )
        assert stale.exit_code == ExitCode.VERIFICATION_FAILED, stale.stdout + stale.stderr
        assert "TCB status 'OutOfDate' is not accepted" in stale.stderr
        assert seen == ["OutOfDate"]

        status = _ok(env["bob"], "status", rid)
        assert status["status"] == "pending"
        assert [i["decision"] for i in status["inputs"]] == ["pending", "pending"]


def _ok(env: dict[str, str], *args: str) -> Any:
    res = runner.invoke(app, [*args, "--json"], env=env)
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"
