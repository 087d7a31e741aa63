"""`sealroom credits|quote|offer`: the operator grants and audits, parties read balances, pay,
quote before signing, offer and accept terms; `request --max-price` refuses before signing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from sealroom.cli.exits import ExitCode
from sealroom.cli.main import app
from sealroom.wire.credits import WORKED_EXAMPLE
from tests.client.client_world import AUTO_POLICY, TOPICS_A, write_jsonl
from tests.services import coordinator

runner = CliRunner()


def cli(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok_json(res: Result) -> Any:
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def test_grant_pay_quote_offer_accept_and_audit(tmp_path: Path) -> None:
    with coordinator(tmp_path, pricing=WORKED_EXAMPLE) as url:
        env = {
            name: {"SEALROOM_HOME": str(tmp_path / name), "SEALROOM_URL": url}
            for name in ("owner", "bob")
        }
        ids = {
            n: ok_json(cli(e, "init", "--unencrypted-keystore", "--name", n, "--json"))["party"]
            for n, e in env.items()
        }
        rules = tmp_path / "policy.json"
        rules.write_text(json.dumps(AUTO_POLICY))
        data = write_jsonl(tmp_path / "a.jsonl", TOPICS_A)
        ds, ds2 = (
            ok_json(
                cli(env["owner"], "dataset", "publish", str(f), "--policy", str(rules), "--json")
            )["dataset"]
            for f in (data, write_jsonl(tmp_path / "b.jsonl", TOPICS_A[:2]))
        )
        operator = {
            "SEALROOM_DB": f"sqlite:///{tmp_path / 'coordinator.db'}",
            "SEALROOM_COORDINATOR_KEYS": str(tmp_path / "coordinator-keys"),
        }

        ledger = ok_json(cli(env["bob"], "credits", "ledger", "--json"))
        assert ledger["pricing"]["fee_bps"] == 500

        # The operator grants only to registered parties (bob registers on first use).
        assert ok_json(cli(env["bob"], "credits", "balance", "--json"))["balance"] == 0
        granted = ok_json(
            cli(operator, "credits", "grant", ids["bob"], "500", "--key", "w", "--json")
        )
        assert granted["balance"] == 500
        again = ok_json(
            cli(operator, "credits", "grant", ids["bob"], "500", "--key", "w", "--json")
        )
        assert not again["created"]
        assert again["balance"] == 500

        quote = ok_json(
            cli(env["bob"], "quote", "gap-analysis", "--dataset", ds, "--dataset", ds2, "--json")
        )
        assert quote["price"] > 0
        human = cli(env["bob"], "quote", "gap-analysis", "--dataset", ds, "--dataset", ds2)
        assert f"price        {quote['price']}" in human.stdout

        # Too expensive: refused before anything is signed.
        res = cli(
            env["bob"],
            "request",
            "gap-analysis",
            "--dataset",
            ds,
            "--dataset",
            ds2,
            "--max-price",
            "1",
            "--json",
        )
        assert res.exit_code == ExitCode.POLICY_DENIED, res.stdout
        assert "above --max-price" in res.stdout
        assert ok_json(cli(env["bob"], "requests", "--json"))["items"] == []

        paid = ok_json(
            cli(env["bob"], "credits", "pay", ids["owner"], "40", "--key", "t", "--json")
        )
        assert paid["salt"] is not None
        short = cli(env["bob"], "credits", "pay", ids["owner"], "461", "--key", "u", "--json")
        assert short.exit_code == ExitCode.ERROR
        assert "insufficient_credits" in short.stdout
        assert ok_json(cli(env["bob"], "credits", "balance", "--json"))["balance"] == 460
        assert ok_json(cli(env["owner"], "credits", "balance", "--json"))["balance"] == 40

        offer = ok_json(
            cli(
                env["owner"],
                "offer",
                "make",
                ds,
                "gap-analysis",
                "--price",
                "11",
                "--bonus",
                "2",
                "--to",
                ids["bob"],
                "--json",
            )
        )["envelope"]
        listed = ok_json(cli(env["bob"], "offer", "list", "--json"))["items"]
        assert [_digest(v["envelope"]) for v in listed] == [_digest(offer)]
        accepted = ok_json(cli(env["bob"], "offer", "accept", _digest(offer), "--json"))["accept"]
        agreed = ok_json(
            cli(
                env["bob"],
                "quote",
                "gap-analysis",
                "--dataset",
                ds,
                "--dataset",
                ds2,
                "--terms",
                accepted,
                "--json",
            )
        )
        assert agreed["negotiated"] == [ds]
        assert [i["amount"] for i in agreed["inputs"]] == [13, quote["inputs"][1]["amount"]]

        audit = ok_json(cli(operator, "credits", "audit", "--json"))
        assert audit["transfers"] == 2
        assert audit["issued"] == 500


def _digest(envelope: dict[str, Any]) -> str:
    from sealroom.statements import Envelope, canonical_json

    return Envelope.from_json(canonical_json(envelope)).digest
