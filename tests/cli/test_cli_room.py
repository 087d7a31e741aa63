"""``sealroom request --room-policy``: a room policy end to end through the CLI and the enclave."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from sealroom.cli.main import app
from sealroom.statements import Receipt
from sealroom.verification.bundle import ProofBundle
from tests.client.client_world import AUTO_POLICY, TOPICS_A, TOPICS_B, write_jsonl
from tests.services import coordinator, registered_enclave

runner = CliRunner()


def cli(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok_json(res: Result) -> Any:
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def test_cli_room_policy_restricts_and_is_enforced(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        env = {
            name: {"SEALROOM_HOME": str(tmp_path / name), "SEALROOM_URL": url}
            for name in ("alice", "bob")
        }
        for name, e in env.items():
            ok_json(cli(e, "init", "--unencrypted-keystore", "--name", name, "--json"))
        policy = tmp_path / "policy.json"
        policy.write_text(json.dumps(AUTO_POLICY))
        datasets = [
            ok_json(
                cli(
                    env[who],
                    "dataset",
                    "publish",
                    str(write_jsonl(tmp_path / f"{who}.jsonl", topics)),
                    "--policy",
                    str(policy),
                    "--json",
                )
            )["dataset"]
            for who, topics in (("alice", TOPICS_A), ("bob", TOPICS_B))
        ]
        ds_args = [a for d in datasets for a in ("--dataset", d)]

        def request(room: dict[str, Any], name: str) -> dict[str, Any]:
            path = tmp_path / name
            path.write_text(json.dumps(room))
            args = ["request", "topic-overlap", *ds_args, "--room-policy", str(path), "--json"]
            out: dict[str, Any] = ok_json(cli(env["bob"], *args))
            return out

        # Both owners' policies alone allow topic-overlap; a narrower room allow list refuses.
        narrow = request({"allow": [{"id": "gap-analysis"}]}, "narrow.json")
        assert narrow["status"] == "rejected"
        assert "with the room policy" in narrow["status_reason"]
        assert narrow["room_policy"] is not None

        # A bad rules file is refused before anything is signed.
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"k": 0}))
        res = cli(env["bob"], "request", "topic-overlap", *ds_args, "--room-policy", str(bad))
        assert res.exit_code == 1
        assert "policy file" in res.stderr

        # A room that allows but raises k to 50 and lists nothing for automatic approval.
        manual = request({"allow": [{"id": "topic-overlap"}], "k": 50}, "manual.json")
        assert manual["status"] == "pending"
        assert all(p["allowed"] and not p["automatic"] for p in manual["precheck"])

        worker = registered_enclave(url)
        auto = ok_json(cli(env["alice"], "inbox", "--auto-approve", "--allow-simulated", "--json"))
        assert [a["action"] for a in auto["actions"]] == ["left"]
        assert "with the room policy" in auto["actions"][0]["reason"]
        for who in ("alice", "bob"):  # by hand, then
            ok_json(cli(env[who], "approve", manual["request"], "--allow-simulated", "--json"))
        assert worker.step().outcome == "completed"
        out = tmp_path / "out"
        got = ok_json(
            cli(
                env["bob"],
                "result",
                manual["request"],
                "--out",
                str(out),
                "--allow-simulated",
                "--json",
            )
        )
        assert got["verified"] is True
        bundle = ProofBundle.from_json((out / "bundle.json").read_bytes())
        receipt = bundle.receipt.open(Receipt).statement
        assert manual["room_policy"] in receipt.policies
        assert all(d.room_policy == manual["room_policy"] for d in receipt.decisions)
        assert all(d.k == 50 for d in receipt.decisions)
