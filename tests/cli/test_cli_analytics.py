"""Analytics computations through the CLI: `request --params/--param`, `approve`, `status --wait`,
`result --out`, against the real coordinator in a thread and an in-process simulated enclave."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from sealroom.cli.main import app
from sealroom.cli.party import request_params
from sealroom.computations import default_registry
from sealroom.errors import InvalidInput
from tests.client.analytics_e2e_world import (
    GRUNFELD_SQL,
    SQL_RULES,
    exact_policy,
    frame,
    grunfeld_files,
    lift_files,
    policy,
    run_direct,
)
from tests.services import coordinator, registered_enclave

runner = CliRunner()


def cli(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok_json(res: Result) -> Any:
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def fails(res: Result, code: str) -> str:
    """The one-line error (checked: exit 1, one line on stderr, the JSON error document)."""
    assert res.exit_code == 1, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    assert lines[0].endswith(f"[{code}]")
    assert json.loads(res.stdout)["error"]["code"] == code
    return lines[0]


# --- parameter parsing ------------------------------------------------------------------------


def test_param_values_are_json_when_they_parse_else_strings() -> None:
    got = request_params(
        None,
        [
            "top=10",
            "intercept=false",
            "confidence=0.90",
            'features=["GPA", "TUCE"]',
            'dp={"epsilon": 1.5, "lower": 0, "upper": 1e1}',
            "sql=SELECT a.x, count(*) FROM a GROUP BY a.x",
            'key="17"',
            "id_column=null",
            "empty=",
        ],
    )
    assert got == {
        "top": 10,
        "intercept": False,
        "confidence": "0.9",
        "features": ["GPA", "TUCE"],
        "dp": {"epsilon": "1.5", "lower": 0, "upper": "10"},
        "sql": "SELECT a.x, count(*) FROM a GROUP BY a.x",
        "key": "17",
        "id_column": None,
        "empty": "",
    }


def test_params_object_then_param_overrides(tmp_path: Path) -> None:
    doc = tmp_path / "p.json"
    doc.write_text(json.dumps({"value": "affairs", "percentiles": [50], "confidence": "0.95"}))
    got = request_params(f"@{doc}", ["confidence=0.99", 'group_by=["occupation"]'])
    assert got == {
        "value": "affairs",
        "percentiles": [50],
        "confidence": "0.99",
        "group_by": ["occupation"],
    }
    assert request_params('{"x": -0.50}', []) == {"x": "-0.5"}


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        (None, ["features=[GPA, TUCE]"], "--param features: not valid JSON"),
        (None, ['dp={"epsilon": 1,}'], "--param dp: not valid JSON"),
        (None, ["noequals"], "--param must be key=value"),
        (None, ["top=1", "top=2"], "--param top is given more than once"),
        ('{"a": 1', [], "--params: not valid JSON"),
        ('{"a": 1, "a": 2}', [], "duplicate key 'a'"),
        ("[1, 2]", [], "--params must be a JSON object"),
        ('{"a": NaN}', [], "NaN is not a number"),
        ('{"a": 1e999}', [], "out of range"),
        ("@/no/such/file.json", [], "cannot read --params file"),
    ],
)
def test_bad_parameters_are_refused_with_the_name(
    params: str | None, param: list[str], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("(", r"\(")):
        request_params(params, param)


def test_parameters_are_checked_locally_before_anything_is_sent(tmp_path: Path) -> None:
    # The coordinator is unreachable: every refusal here is local.
    env = {"SEALROOM_HOME": str(tmp_path / "h"), "SEALROOM_URL": "http://127.0.0.1:9"}
    ok_json(cli(env, "init", "--unencrypted-keystore", "--name", "x", "--json"))
    ds = ["--dataset", "sha256:" + "1" * 64, "--dataset", "sha256:" + "2" * 64]
    line = fails(
        cli(env, "request", "lift", *ds, "--param", "confidence=2", "--json"), "invalid_input"
    )
    assert "confidence" in line
    line = fails(cli(env, "request", "lift", *ds, "--param", "nosuch=1", "--json"), "invalid_input")
    assert "nosuch" in line
    line = fails(
        cli(env, "request", "train-model", *ds, "--param", "features=[a,b]", "--json"),
        "invalid_input",
    )
    assert "--param features: not valid JSON" in line
    bad = tmp_path / "bad.json"
    bad.write_text('{"sql": "SELECT 1",}')
    line = fails(
        cli(env, "request", "sql-aggregate", *ds, "--params", f"@{bad}", "--json"),
        "invalid_input",
    )
    assert f"--params file {bad}: not valid JSON" in line
    line = fails(cli(env, "request", "lift", *ds[:2], "--json"), "invalid_input")
    assert "takes 2 inputs" in line
    # Without --json: the same single line on stderr, nothing on stdout.
    res = cli(env, "request", "lift", *ds, "--params", "{oops")
    assert res.exit_code == 1
    assert res.stdout == ""
    [only] = res.stderr.strip().splitlines()
    assert only.startswith("error: --params: not valid JSON (")
    assert only.endswith("[invalid_input]")


# --- end to end -------------------------------------------------------------------------------


def test_sql_aggregate_and_lift_through_the_cli(tmp_path: Path) -> None:
    registry = default_registry()
    with coordinator(tmp_path) as url:
        env = {
            name: {"SEALROOM_HOME": str(tmp_path / name), "SEALROOM_URL": url}
            for name in ("alice", "bob", "carol")
        }
        for name, e in env.items():
            ok_json(cli(e, "init", "--unencrypted-keystore", "--name", name, "--json"))
        worker = registered_enclave(url)

        def publish(owner: str, path: Path, rules: dict[str, Any]) -> str:
            pfile = tmp_path / f"{path.stem}.policy.json"
            pfile.write_text(json.dumps(rules))
            out = ok_json(
                cli(env[owner], "dataset", "publish", str(path), "--policy", str(pfile), "--json")
            )
            return str(out["dataset"])

        def run(requester: str, owners: list[str], args: list[str]) -> tuple[str, Any]:
            req = ok_json(cli(env[requester], "request", *args, "--json"))
            rid = str(req["request"])
            assert req["status"] == "pending"
            assert all(p["automatic"] for p in req["precheck"])
            for owner in owners:
                done = ok_json(cli(env[owner], "approve", rid, "--allow-simulated", "--json"))
                assert [a["mode"] for a in done["approved"]] == ["policy"]
            step = worker.step()
            assert step.outcome == "completed", step.reason
            status = ok_json(
                cli(env[requester], "status", rid, "--wait", "--timeout", "5", "--json")
            )
            assert status["status"] == "completed"
            out = tmp_path / "out" / rid[7:19]
            got = ok_json(
                cli(
                    env[requester],
                    "result",
                    rid,
                    "--out",
                    str(out),
                    "--allow-simulated",
                    "--json",
                )
            )
            assert got["verified"] is True
            assert got["simulated"] is True
            assert json.loads((out / "result.json").read_text())["request"] == rid
            verified = cli(
                env[requester],
                "verify",
                str(out / "bundle.json"),
                "--allow-simulated",
                "--result",
                str(out / "result.json"),
            )
            assert verified.exit_code == 0, verified.stdout + verified.stderr
            return rid, got["result"]

        # sql-aggregate: the SQL text from a --params file; the requester owns no input.
        a, b = grunfeld_files(tmp_path)
        sql_params = {"sql": GRUNFELD_SQL}
        rules_a, rules_b = (
            exact_policy(
                "sql-aggregate", sql_params, [other], k=5, entity_column="firm", sql=SQL_RULES
            )
            for other in (b, a)
        )
        da, db = publish("alice", a, rules_a), publish("bob", b, rules_b)
        params_file = tmp_path / "sql-params.json"
        params_file.write_text(json.dumps({"sql": GRUNFELD_SQL}))
        _, body = run(
            "carol",
            ["alice", "bob"],
            ["sql-aggregate", "--dataset", da, "--dataset", db, "--params", f"@{params_file}"],
        )
        expected = run_direct(registry.get("sql-aggregate"), [a, b], sql_params, [rules_a, rules_b])
        assert body == expected
        assert [r[1] for r in body["rows"]] == [11, 11, 11]

        # lift: inline --params, one key overridden by --param (a decimal typed as a number).
        exposure, conversions = lift_files(tmp_path)
        lift_params = {"group": "group", "confidence": "0.9"}
        de = publish("alice", exposure, exact_policy("lift", lift_params, [conversions]))
        dc = publish("bob", conversions, exact_policy("lift", lift_params, [exposure]))
        _, body = run(
            "bob",
            ["alice", "bob"],
            [
                "lift",
                "--dataset",
                de,
                "--dataset",
                dc,
                "--params",
                '{"group": "group", "confidence": "0.95"}',
                "--param",
                "confidence=0.90",
            ],
        )
        expected = run_direct(
            registry.get("lift"), [exposure, conversions], lift_params, [policy("lift")] * 2
        )
        assert body == expected
        assert body["confidence"] == "0.9"
        fair = frame("fair")
        assert body["control"]["n"] == int((fair["children"] == 0).sum())
