"""Exit codes a script can branch on, and ``--json`` everywhere, usage errors included."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from sealroom import __version__
from sealroom.cli.exits import ExitCode, exit_code_for, exit_codes_table
from sealroom.cli.main import app
from sealroom.client.errors import WaitTimeout
from sealroom.errors import (
    AttestationInvalid,
    BackendUnavailable,
    Conflict,
    InvalidInput,
    PolicyDenied,
    SealroomError,
)
from tests.client.client_world import TOPICS_A, TOPICS_B, write_jsonl
from tests.services import coordinator

runner = CliRunner()
README = Path(__file__).resolve().parents[2] / "README.md"


def cli(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok_json(res: Result) -> Any:
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def test_codes_are_distinct_and_documented() -> None:
    assert len({int(c) for c in ExitCode}) == len(ExitCode)
    assert exit_codes_table() in README.read_text(encoding="utf-8")
    res = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for code in ExitCode:
        assert f"{int(code)} " in res.stdout
    assert "Exit codes" in res.stdout


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput("x"), ExitCode.ERROR),
        (Conflict("x"), ExitCode.ERROR),
        (PolicyDenied("x"), ExitCode.POLICY_DENIED),
        (AttestationInvalid("x"), ExitCode.VERIFICATION_FAILED),
        (WaitTimeout("x"), ExitCode.TIMED_OUT),
        (BackendUnavailable("x"), ExitCode.UNAVAILABLE),
    ],
)
def test_errors_map_to_their_kind(error: SealroomError, code: ExitCode) -> None:
    assert exit_code_for(error) == code


def test_version_json() -> None:
    assert ok_json(runner.invoke(app, ["version", "--json"])) == {"version": __version__}
    res = runner.invoke(app, ["version"])
    assert res.stdout.strip() == __version__


@pytest.mark.parametrize(
    "args",
    [
        ["version", "--json", "--bogus"],
        ["status", "--json"],
        ["--json", "no-such-command"],
        ["request", "topic-overlap", "--ttl", "soon", "--dataset", "x", "--json"],
    ],
)
def test_usage_errors_answer_json(args: list[str]) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == ExitCode.USAGE, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["error"]["code"] == "usage"
    assert doc["error"]["detail"]
    assert res.stderr.strip().splitlines()[-1].endswith("[usage]")


def test_usage_errors_without_json_stay_human() -> None:
    res = runner.invoke(app, ["status"])
    assert res.exit_code == ExitCode.USAGE
    assert res.stdout == ""
    assert "Missing argument" in res.stderr


def test_status_wait_exits_with_the_outcome(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        env = {
            name: {"SEALROOM_HOME": str(tmp_path / name), "SEALROOM_URL": url}
            for name in ("alice", "bob")
        }
        for name, e in env.items():
            ok_json(cli(e, "init", "--unencrypted-keystore", "--name", name, "--json"))
        a = ok_json(
            cli(
                env["alice"],
                "dataset",
                "publish",
                str(write_jsonl(tmp_path / "a.jsonl", TOPICS_A)),
                "--json",
            )
        )
        b = ok_json(
            cli(
                env["bob"],
                "dataset",
                "publish",
                str(write_jsonl(tmp_path / "b.jsonl", TOPICS_B)),
                "--json",
            )
        )
        ask = ("request", "topic-overlap", "--dataset", a["dataset"], "--dataset", b["dataset"])
        first = ok_json(cli(env["bob"], *ask, "--json"))["request"]
        second = ok_json(cli(env["bob"], *ask, "--param", "top=5", "--json"))["request"]

        pending = cli(env["bob"], "status", first, "--wait", "--timeout", "0.2", "--json")
        assert pending.exit_code == ExitCode.TIMED_OUT, pending.stdout + pending.stderr
        assert json.loads(pending.stdout)["error"]["code"] == "timeout"
        assert cli(env["bob"], "status", first, "--json").exit_code == ExitCode.OK

        ok_json(cli(env["alice"], "reject", first, "--reason", "not now", "--json"))
        rejected = cli(env["bob"], "status", first, "--wait", "--timeout", "5", "--json")
        assert rejected.exit_code == ExitCode.REQUEST_REJECTED, rejected.stdout + rejected.stderr
        assert json.loads(rejected.stdout)["status"] == "rejected"
        human = cli(env["bob"], "status", first, "--wait", "--timeout", "5")
        assert human.exit_code == ExitCode.REQUEST_REJECTED
        # Without --wait a finished request is a successful query.
        assert cli(env["bob"], "status", first).exit_code == ExitCode.OK

        ok_json(cli(env["bob"], "withdraw", second, "--json"))
        withdrawn = cli(env["bob"], "status", second, "--wait", "--timeout", "5", "--json")
        assert withdrawn.exit_code == ExitCode.REQUEST_ENDED


def test_an_oversized_integer_parameter_is_invalid_input(tmp_path: Path) -> None:
    huge = "9" * 5000
    res = runner.invoke(
        app,
        ["request", "topic-overlap", "--dataset", "x", "--param", f"top={huge}", "--json"],
        env={"SEALROOM_HOME": str(tmp_path / "h"), "SEALROOM_URL": "http://127.0.0.1:9"},
    )
    assert res.exit_code == ExitCode.ERROR, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["error"]["code"] == "invalid_input"
    assert "integer of 5000 digits" in doc["error"]["detail"]
    assert len(res.stderr.strip().splitlines()) == 1


def test_serve_json_reports_where_it_listens(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALROOM_")}
    db = f"sqlite:///{tmp_path / 'c.db'}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealroom.cli", "serve", "--db", db, "--port", port, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        doc = json.loads(line)
        assert doc["database"] == "sqlite"
        assert doc["pid"] == proc.pid
        assert doc["url"] == f"http://127.0.0.1:{port}"
        assert httpx.get(doc["url"] + "/v1/health", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_computations_describe_every_parameter(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        env = {"SEALROOM_URL": url}
        listed = ok_json(runner.invoke(app, ["computations", "--json"], env=env))
        assert len(listed["computations"]) >= 10
        for c in listed["computations"]:
            for name, prop in c["parameters_schema"]["properties"].items():
                assert prop.get("description"), (c["id"], name)
        one = runner.invoke(app, ["computations", "sql-aggregate"], env=env)
        assert one.exit_code == 0, one.stderr
        assert "sql (required)" in one.stdout
        assert "SQL rules" in one.stdout
        spec = httpx.get(url + "/openapi.json", timeout=30).json()
        sql = spec["components"]["schemas"]["SqlAggregateParams"]
        assert "sql-aggregate" in sql["description"]
        assert sql["properties"]["sql"]["description"]
        missing = runner.invoke(app, ["computations", "nope", "--json"], env=env)
        assert missing.exit_code == ExitCode.ERROR


def test_every_command_takes_json() -> None:
    from typer.main import get_command

    missing: list[str] = []

    def walk(cmd: Any, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
            return
        if "--json" not in {o for p in cmd.params for o in getattr(p, "opts", [])}:
            missing.append(" ".join(path))

    walk(get_command(app), [])
    assert missing == []
