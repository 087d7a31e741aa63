"""`whoami`, `requests`, and what an owner's inbox shows: every parameter in full (the SQL it
is asked to approve), and each party as name + fingerprint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from sealroom.cli.main import app
from sealroom.crypto.keys import fingerprint
from tests.client.analytics_e2e_world import SQL_RULES, exact_policy, grunfeld_files
from tests.services import coordinator

runner = CliRunner()

SQL = (
    "SELECT a.decade, count(DISTINCT a.firm) AS firms, sum(a.invest) AS invest\n"
    "FROM a JOIN b ON a.firm = b.firm AND a.year = b.year\n"
    "GROUP BY a.decade ORDER BY a.decade"
)


def cli(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok_json(res: Result) -> Any:
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def test_whoami_reads_only_the_keystore(tmp_path: Path) -> None:
    env = {"SEALROOM_HOME": str(tmp_path / "h"), "SEALROOM_URL": "http://127.0.0.1:9"}
    made = ok_json(cli(env, "init", "--unencrypted-keystore", "--name", "alice", "--json"))
    assert made["fingerprint"] == fingerprint(made["party"])
    me = ok_json(cli(env, "whoami", "--json"))  # the coordinator is unreachable: no matter
    assert me == {
        "party": made["party"],
        "fingerprint": fingerprint(made["party"]),
        "name": "alice",
        "keystore": made["keystore"],
        "coordinator": "http://127.0.0.1:9",
    }
    human = cli(env, "whoami")
    assert made["party"] in human.stdout
    assert fingerprint(made["party"]) in human.stdout
    nobody = cli({"SEALROOM_HOME": str(tmp_path / "none")}, "whoami", "--json")
    assert nobody.exit_code == 1
    assert json.loads(nobody.stdout)["error"]["code"] == "keystore"


def test_requests_and_an_inbox_that_shows_the_sql(tmp_path: Path) -> None:
    a, b = grunfeld_files(tmp_path)
    rules = {}
    for owner, other in (("alice", b), ("bob", a)):
        rules[owner] = tmp_path / f"{owner}.rules.json"
        exact = exact_policy(
            "sql-aggregate",
            {"sql": SQL},
            [other],
            auto=False,
            k=5,
            entity_column="firm",
            sql=SQL_RULES,
        )
        rules[owner].write_text(json.dumps(exact))
    with coordinator(tmp_path) as url:
        env = {
            name: {"SEALROOM_HOME": str(tmp_path / name), "SEALROOM_URL": url}
            for name in ("alice", "bob", "carol")
        }
        ids = {
            n: ok_json(cli(e, "init", "--unencrypted-keystore", "--name", n, "--json"))["party"]
            for n, e in env.items()
        }
        da, db = (
            ok_json(cli(env[o], "dataset", "publish", str(f), "--policy", str(rules[o]), "--json"))[
                "dataset"
            ]
            for o, f in (("alice", a), ("bob", b))
        )
        assert ok_json(cli(env["carol"], "requests", "--json")) == {"items": []}
        rid = ok_json(
            cli(
                env["carol"],
                "request",
                "sql-aggregate",
                "--dataset",
                da,
                "--dataset",
                db,
                "--params",
                json.dumps({"sql": SQL}),
                "--json",
            )
        )["request"]

        mine = ok_json(cli(env["carol"], "requests", "--json"))["items"]
        assert [r["request"] for r in mine] == [rid]
        assert [i["dataset"] for i in mine[0]["inputs"]] == [da, db]
        assert ok_json(cli(env["carol"], "requests", "--status", "completed", "--json")) == {
            "items": []
        }
        assert ok_json(cli(env["alice"], "requests", "--json")) == {"items": []}
        listed = cli(env["carol"], "requests")
        assert rid in listed.stdout
        assert "pending" in listed.stdout

        inbox = cli(env["alice"], "inbox")
        assert inbox.exit_code == 0, inbox.stderr
        for line in SQL.splitlines():
            assert line in inbox.stdout  # the whole SQL, line by line, nothing cut
        assert f"carol ({fingerprint(ids['carol'])})" in inbox.stdout
        assert f"bob ({fingerprint(ids['bob'])})" in inbox.stdout
        assert ok_json(cli(env["alice"], "inbox", "--json"))["items"][0]["parameters"] == {
            "sql": SQL
        }

        found = cli(env["carol"], "search", "--owner", ids["alice"])
        assert f"alice ({fingerprint(ids['alice'])})" in found.stdout
        shown = cli(env["carol"], "dataset", "show", da)
        assert fingerprint(ids["alice"]) in shown.stdout
