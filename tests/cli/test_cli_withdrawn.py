"""``sealroom dataset withdraw`` and what a withdrawn dataset refuses, through the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from sealroom.cli.main import app
from tests.client.client_world import TOPICS_A, TOPICS_B, write_jsonl
from tests.services import coordinator

runner = CliRunner()
_ERROR = re.compile(r"^error: .+ \[(?P<code>[a-z_]+)\]$")


def cli(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok(res: Result) -> Any:
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def refused(res: Result, code: str) -> str:
    assert res.exit_code == 1, res.stdout + res.stderr
    (line,) = res.stderr.splitlines()
    m = _ERROR.match(line)
    assert m is not None, line
    assert m["code"] == code, line
    return line


def test_cli_withdrawn_dataset_refuses_new_requests(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        env = {
            n: {"SEALROOM_HOME": str(tmp_path / n), "SEALROOM_URL": url}
            for n in ("alice", "bob", "carol")
        }
        for name, e in env.items():
            ok(cli(e, "init", "--unencrypted-keystore", "--name", name, "--json"))
        a = ok(
            cli(
                env["alice"],
                "dataset",
                "publish",
                str(write_jsonl(tmp_path / "a.jsonl", TOPICS_A)),
                "--json",
            )
        )["dataset"]
        b = ok(
            cli(
                env["bob"],
                "dataset",
                "publish",
                str(write_jsonl(tmp_path / "b.jsonl", TOPICS_B)),
                "--json",
            )
        )["dataset"]
        ask = ("request", "gap-analysis", "--dataset", a, "--dataset", b, "--json")
        pending = ok(cli(env["bob"], *ask))["request"]

        refused(
            cli(env["carol"], "dataset", "withdraw", a, "--reason", "mine now"), "policy_denied"
        )
        refused(
            cli(env["alice"], "dataset", "withdraw", "sha256:" + "0" * 64, "--reason", "x"),
            "not_found",
        )
        assert ok(cli(env["bob"], "dataset", "show", a, "--json"))["status"] == "active"

        done = ok(cli(env["alice"], "dataset", "withdraw", a, "--reason", "retired", "--json"))
        assert done["status"] == "withdrawn"
        human = cli(env["alice"], "dataset", "show", a)
        assert "withdrawn" in human.stdout

        view = ok(cli(env["bob"], "status", pending, "--json"))
        assert view["status"] == "rejected"
        assert "retired" in view["status_reason"]

        line = refused(cli(env["bob"], *ask[:-1]), "conflict")
        assert "withdrawn" in line
        refused(cli(env["alice"], "dataset", "withdraw", a, "--reason", "again"), "conflict")
        found = ok(cli(env["bob"], "search", "--json"))
        assert a not in {h["dataset"]["dataset"] for h in found["items"]}
        # Bob's datasets are untouched: a request on them goes through.
        b2 = ok(
            cli(
                env["bob"],
                "dataset",
                "publish",
                str(write_jsonl(tmp_path / "b2.jsonl", TOPICS_A, rows=30)),
                "--json",
            )
        )["dataset"]
        other = ok(
            cli(env["carol"], "request", "gap-analysis", "--dataset", b, "--dataset", b2, "--json")
        )
        assert other["status"] == "pending"
