"""The party CLI against the real coordinator in a thread (SEALROOM_HOME / SEALROOM_URL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from sealroom.cli.main import app
from tests.client.client_world import (
    AUTO_POLICY,
    TOPICS_A,
    TOPICS_B,
    write_jsonl,
)
from tests.services import coordinator, registered_enclave

runner = CliRunner()


def cli(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok_json(res: Result) -> Any:
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def fails(res: Result, code: str) -> dict[str, Any]:
    assert res.exit_code == 1, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ")
    assert lines[-1].endswith(f"[{code}]")
    doc: dict[str, Any] = json.loads(res.stdout)
    assert doc["error"]["code"] == code
    return doc


def test_cli_end_to_end_and_bad_input(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        env = {
            name: {"SEALROOM_HOME": str(tmp_path / name), "SEALROOM_URL": url}
            for name in ("alice", "bob", "carol")
        }
        for name, e in env.items():
            assert (
                ok_json(cli(e, "init", "--unencrypted-keystore", "--name", name, "--json"))["name"]
                == name
            )

        policy = tmp_path / "policy.json"
        policy.write_text(json.dumps(AUTO_POLICY))
        a_file = write_jsonl(tmp_path / "a.jsonl", TOPICS_A)
        b_file = write_jsonl(tmp_path / "b.jsonl", TOPICS_B)
        a = ok_json(
            cli(
                env["alice"],
                "dataset",
                "publish",
                str(a_file),
                "--title",
                "Alice TEE log",
                "--policy",
                str(policy),
                "--json",
            )
        )
        b = ok_json(cli(env["bob"], "dataset", "publish", str(b_file), "--json"))
        assert a["policy"] is not None
        assert b["rows"] == 60

        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"text": "fine"}\n{not json\n')
        fails(cli(env["alice"], "dataset", "publish", str(bad), "--json"), "invalid_input")
        res = cli(env["alice"], "dataset", "publish", str(bad))
        assert res.exit_code == 1
        assert len(res.stderr.strip().splitlines()) == 1

        fails(cli(env["bob"], "dataset", "show", "sha256:" + "0" * 64, "--json"), "not_found")
        shown = ok_json(cli(env["bob"], "dataset", "show", a["dataset"], "--json"))
        assert shown["title"] == "Alice TEE log"
        listed = ok_json(cli(env["bob"], "dataset", "list", "--json"))
        assert {d["dataset"] for d in listed["items"]} == {a["dataset"], b["dataset"]}
        found = ok_json(cli(env["bob"], "search", "Alice", "--json"))
        assert found["items"][0]["dataset"]["dataset"] == a["dataset"]
        text = cli(env["bob"], "search", "Alice")
        assert a["dataset"] in text.stdout

        fails(
            cli(env["bob"], "request", "topic-overlap", "--dataset", a["dataset"], "--json"),
            "invalid_input",
        )
        req = ok_json(
            cli(
                env["bob"],
                "request",
                "topic-overlap",
                "--dataset",
                a["dataset"],
                "--dataset",
                b["dataset"],
                "--param",
                "top=10",
                "--json",
            )
        )
        rid = req["request"]
        assert req["status"] == "pending"
        inbox = ok_json(cli(env["alice"], "inbox", "--json"))
        assert [i["request"] for i in inbox["items"]] == [rid]

        # Carol is no party of the request: it does not exist for her.
        fails(cli(env["carol"], "approve", rid, "--allow-simulated", "--json"), "not_found")

        worker = registered_enclave(url)

        # Without --allow-simulated the simulated enclave is refused.
        fails(cli(env["bob"], "approve", rid, "--json"), "attestation_invalid")
        auto = cli(env["alice"], "inbox", "--auto-approve", "--allow-simulated", "--json")
        assert "SIMULATED" in auto.stderr
        assert ok_json(auto)["actions"][0]["action"] == "approved"
        approved = ok_json(cli(env["bob"], "approve", rid, "--allow-simulated", "--json"))
        assert approved["approved"][0]["simulated"] is True
        assert approved["approved"][0]["status"] == "approved"

        assert worker.step().outcome == "completed"
        done = ok_json(cli(env["bob"], "status", rid, "--wait", "--timeout", "5", "--json"))
        assert done["status"] == "completed"

        out = tmp_path / "out"
        fails(cli(env["bob"], "result", rid, "--out", str(out), "--json"), "bundle_rejected")
        got = ok_json(
            cli(env["bob"], "result", rid, "--out", str(out), "--allow-simulated", "--json")
        )
        assert got["verified"] is True
        assert got["simulated"] is True
        human = cli(env["bob"], "result", rid, "--out", str(out), "--allow-simulated")
        assert "SIMULATED" in human.stdout
        verified = cli(
            env["bob"],
            "verify",
            str(out / "bundle.json"),
            "--allow-simulated",
            "--result",
            str(out / "result.json"),
        )
        assert verified.exit_code == 0, verified.stdout

        fails(cli(env["bob"], "withdraw", rid, "--json"), "conflict")


def test_cli_unreachable_coordinator(tmp_path: Path) -> None:
    env = {"SEALROOM_HOME": str(tmp_path / "h"), "SEALROOM_URL": "http://127.0.0.1:9"}
    ok_json(cli(env, "init", "--unencrypted-keystore", "--name", "x", "--json"))
    doc = fails(cli(env, "inbox", "--json"), "backend_unavailable")
    assert "127.0.0.1:9" in doc["error"]["detail"]
    fails(
        cli(env, "request", "topic-overlap", "--dataset", "x", "--param", "oops", "--json"),
        "invalid_input",
    )
