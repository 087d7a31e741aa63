"""The demo's marketplace act against a real coordinator and enclave: it succeeds, and its
balances are what the negotiated terms say."""

from __future__ import annotations

from pathlib import Path

from sealroom.client import Party
from sealroom.demo import _act_market
from sealroom.wire.credits import account_of
from tests.services import coordinator, running_enclave


def test_market_act(tmp_path: Path) -> None:
    lines: list[str] = []
    with coordinator(tmp_path) as url, running_enclave(url):
        parties = {
            n: Party.create(home=tmp_path / n, name=n, url=url, unencrypted=True)
            for n in ("Seller", "Buyer")
        }
        try:
            code = _act_market(
                parties,
                tmp_path / "coordinator.db",
                tmp_path / "coordinator-keys",
                lines.append,
                60.0,
            )
            assert code == 0, "\n".join(lines)
            assert parties["Buyer"].client.credits().balance == 500 - 130
            seller = parties["Seller"].client.credits()
            assert seller.account == account_of(parties["Seller"].party_id)
            assert seller.balance == 130
        finally:
            for p in parties.values():
                p.close()
    assert any(line.startswith("E. audit") for line in lines)
