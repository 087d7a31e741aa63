"""`sealroom budget DATASET`: the owner sees spent and remaining epsilon/delta per requester and
in total, summed from the enclave's receipts; nobody else sees it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from sealroom.cli.exits import ExitCode
from sealroom.cli.main import app
from sealroom.crypto.keys import fingerprint
from tests.client.analytics_e2e_world import fair_row_files, policy
from tests.services import coordinator, registered_enclave

runner = CliRunner()

BUDGET = {
    "epsilon_per_requester": "1.5",
    "epsilon_total": "10",
    "delta_per_requester": "0.00001",
    "delta_total": "0.0001",
}
PARAMS = {
    "value": "affairs",
    "group_by": ["occupation"],
    "percentiles": [50],
    "dp": {"epsilon": "1", "delta": "0.000001", "lower": "0", "upper": "10"},
}


def cli(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok_json(res: Result) -> Any:
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def test_owner_sees_spent_and_remaining_budget(tmp_path: Path) -> None:
    files = fair_row_files(tmp_path, 2, ["occupation", "affairs"])
    rules = tmp_path / "policy.json"
    rules.write_text(json.dumps(policy("aggregate-stats", entity_column="id", dp=BUDGET)))
    with coordinator(tmp_path) as url:
        env = {
            name: {"SEALROOM_HOME": str(tmp_path / name), "SEALROOM_URL": url}
            for name in ("owner", "bob", "carol")
        }
        ids = {
            n: ok_json(cli(e, "init", "--unencrypted-keystore", "--name", n, "--json"))["party"]
            for n, e in env.items()
        }
        ds, other = (
            ok_json(
                cli(env["owner"], "dataset", "publish", str(f), "--policy", str(rules), "--json")
            )["dataset"]
            for f in files
        )
        fresh = ok_json(cli(env["owner"], "budget", ds, "--json"))
        assert (fresh["epsilon_spent"], fresh["epsilon_remaining"]) == ("0", "10")
        assert fresh["requesters"] == []

        worker = registered_enclave(url)
        for requester in ("bob", "carol", "bob"):
            rid = ok_json(
                cli(
                    env[requester],
                    "request",
                    "aggregate-stats",
                    "--dataset",
                    ds,
                    "--dataset",
                    other,
                    "--params",
                    json.dumps(PARAMS),
                    "--json",
                )
            )["request"]
            ok_json(cli(env["owner"], "approve", rid, "--allow-simulated", "--json"))
            worker.step()

        # Bob's second run (2 > 1.5) is refused by the enclave's ledger: no receipt, no charge.
        view = ok_json(cli(env["owner"], "budget", ds, "--json"))
        assert view["receipts"] == 2
        assert view["simulated_receipts"] == 2
        assert (view["epsilon_spent"], view["epsilon_remaining"]) == ("2", "8")
        assert (view["delta_spent"], view["delta_remaining"]) == ("0.000002", "0.000098")
        by = {r["requester"]: r for r in view["requesters"]}
        assert set(by) == {ids["bob"], ids["carol"]}
        bob = by[ids["bob"]]
        assert (bob["runs"], bob["epsilon_spent"], bob["epsilon_remaining"]) == (1, "1", "0.5")
        assert bob["requester_name"] == "bob"
        assert bob["requester_fingerprint"] == fingerprint(ids["bob"])
        assert "ledger" in view["source"]

        human = cli(env["owner"], "budget", ds)
        assert human.exit_code == 0, human.stderr
        assert f"bob ({fingerprint(ids['bob'])})" in human.stdout
        assert "spent 2 of 10, remaining 8" in human.stdout

        # Only the owner sees who spent what.
        denied = cli(env["bob"], "budget", ds, "--json")
        assert denied.exit_code == ExitCode.POLICY_DENIED, denied.stdout + denied.stderr
        assert json.loads(denied.stdout)["error"]["code"] == "policy_denied"
