"""The marketplace through the CLI: `model publish|list|show`, `evaluate submit|review|list`,
`portfolio create|show|pledge`, `dispute file|list|resolve`, `reputation`, against the real
coordinator in a thread and an in-process simulated enclave."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from sealroom.cli.main import app
from sealroom.client import flows
from sealroom.coordinator.payments import InMemoryPayments
from tests.client.analytics_e2e_world import exact_policy, frame, spector_columns_files, write_csv
from tests.client.client_world import now
from tests.client.market_world import PARAMS, PRICE, approve_all, parties, predict, publish
from tests.services import coordinator, registered_enclave

runner = CliRunner()


def cli(home: Path, url: str, *args: str) -> Result:
    return runner.invoke(app, list(args), env={"SEALROOM_HOME": str(home), "SEALROOM_URL": url})


def ok_json(res: Result) -> Any:
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def fails(res: Result, code: str) -> str:
    assert res.exit_code != 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["error"]["code"] == code, res.stdout
    return res.stderr


def test_marketplace_through_the_cli(tmp_path: Path) -> None:
    payments = InMemoryPayments()
    with coordinator(tmp_path, payments=payments) as url:
        w = parties(url, tmp_path, ["alice", "bob", "tina", "uma", "sam", "cora"])
        payments._balances[w["uma"].id] = 1000
        worker = registered_enclave(url)
        a_file, b_file = spector_columns_files(tmp_path, [["GPA", "TUCE"], ["PSI", "GRADE"]])
        a = publish(w["alice"], a_file, exact_policy("train-model", PARAMS, [b_file], k=3))
        b = publish(w["bob"], b_file, exact_policy("train-model", PARAMS, [a_file], k=3))
        t = w["tina"]
        train = flows.request(t.client, t.identity, "train-model", [a, b], PARAMS, now=now())
        approve_all([w["alice"], w["bob"]], train.request)
        assert worker.step().outcome == "completed"
        res = cli(
            t.home,
            url,
            "result",
            train.request,
            "--out",
            str(tmp_path / "trained"),
            "--allow-simulated",
            "--json",
        )
        assert ok_json(res)["verified"] is True

        # model publish | list | show
        bad = cli(
            t.home,
            url,
            "model",
            "publish",
            str(tmp_path / "nowhere"),
            "--name",
            "m",
            "--price",
            "1",
            "--json",
        )
        fails(bad, "invalid_input")
        card = ok_json(
            cli(
                t.home,
                url,
                "model",
                "publish",
                str(tmp_path / "trained"),
                "--name",
                "grade model",
                "--price",
                str(PRICE),
                "--json",
            )
        )
        model = card["model"]
        assert card["provenance"]["request"] == train.request
        assert card["price"] == PRICE
        listed = ok_json(cli(t.home, url, "model", "list", "--json"))
        assert [m["model"] for m in listed["items"]] == [model]
        shown = cli(t.home, url, "model", "show", model)
        assert shown.exit_code == 0, shown.stderr
        assert "trained by train-model" in shown.stdout
        assert train.request in shown.stdout

        # a paid use (the SDK, as in the e2e test), then evaluate through the CLI
        rows = frame("spector")[["id", "GPA", "TUCE", "PSI"]].iloc[:4]
        artifact = t.client.model(model).artifact
        use, _ = predict(w, worker, "uma", artifact, write_csv(tmp_path / "u.csv", rows))
        assert payments.balance(t.id) == PRICE
        fails(
            cli(
                w["sam"].home,
                url,
                "evaluate",
                "submit",
                model,
                "--use",
                use,
                "--score",
                "0",
                "--json",
            ),
            "invalid_input",
        )
        ev = ok_json(
            cli(
                w["uma"].home,
                url,
                "evaluate",
                "submit",
                model,
                "--use",
                use,
                "--score",
                "0.9",
                "--summary",
                "fine",
                "--json",
            )
        )
        evals = ok_json(cli(w["uma"].home, url, "evaluate", "list", model, "--json"))
        assert [e["evaluation"] for e in evals["items"]] == [ev["evaluation"]]
        fails(
            cli(
                w["uma"].home,
                url,
                "evaluate",
                "review",
                ev["evaluation"],
                "--use",
                use,
                "--rating",
                "5",
                "--json",
            ),
            "invalid_input",
        )

        # portfolio create | show | pledge
        pf = ok_json(
            cli(
                w["cora"].home,
                url,
                "portfolio",
                "create",
                "--name",
                "halves",
                "--item",
                f"{a}=7000",
                "--item",
                f"{b}=3000",
                "--fee",
                "500",
                "--json",
            )
        )
        shown = ok_json(cli(w["cora"].home, url, "portfolio", "show", pf["portfolio"], "--json"))
        assert [i["weight"] for i in shown["items"]] == [7000, 3000]
        fails(
            cli(
                w["cora"].home,
                url,
                "portfolio",
                "create",
                "--name",
                "x",
                "--item",
                f"{a}=7000",
                "--json",
            ),
            "statement_format",
        )
        again = flows.request(t.client, t.identity, "train-model", [a, b], PARAMS, now=now())
        pledge = ok_json(
            cli(
                t.home,
                url,
                "portfolio",
                "pledge",
                pf["portfolio"],
                "--request",
                again.request,
                "--amount",
                "1000",
                "--json",
            )
        )
        assert [s["amount"] for s in pledge["shares"]] == [50, 665, 285]

        # dispute file | list | resolve; reputation
        d = ok_json(
            cli(
                w["uma"].home,
                url,
                "dispute",
                "file",
                use,
                "--against",
                t.id,
                "--amount",
                "40",
                "--reason",
                "wrong on my rows",
                "--json",
            )
        )
        listed = ok_json(cli(t.home, url, "dispute", "list", "--json"))
        assert [x["dispute"] for x in listed["items"]] == [d["dispute"]]
        keys = tmp_path / "coordinator-keys"
        done = ok_json(
            cli(
                t.home,
                url,
                "dispute",
                "resolve",
                d["dispute"],
                "--outcome",
                "upheld",
                "--refund",
                "40",
                "--reason",
                "partly right",
                "--keys",
                str(keys),
                "--json",
            )
        )
        assert done["status"] == "upheld"
        assert payments.balance(w["uma"].id) == 1000 - PRICE + 40
        rep = ok_json(cli(t.home, url, "reputation", t.id, "--json"))
        roles = {r["role"]: r for r in rep["roles"]}
        # (500 + 100 * 0.9) / 1100 / 2 = 0.268182
        assert roles["trainer"]["score"] == "0.268182"
        assert roles["trainer"]["upheld_against"] == 1
