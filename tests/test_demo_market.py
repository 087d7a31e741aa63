"""The demo's marketplace act against a real coordinator and enclave: it succeeds, and every
amount is what the terms, the portfolio's weights, the model's price and the arbiter say."""

from __future__ import annotations

import re
from pathlib import Path

from sealroom.client import Party
from sealroom.demo import MARKET_NUMBERS, MARKET_PARTIES, _act_market
from sealroom.wire.credits import account_of
from tests.services import coordinator, running_enclave


def _balances(line: str) -> dict[str, int]:
    """``   label: Seller 130, Buyer 370, ... (sum N)`` -> {name: balance}."""
    listed = line.split(": ", 1)[1].rsplit(" (sum", 1)[0]
    return {name: int(b) for name, b in (item.rsplit(" ", 1) for item in listed.split(", "))}


def _line(lines: list[str], prefix: str) -> int:
    [i] = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    return i


def test_market_act(tmp_path: Path) -> None:
    n = MARKET_NUMBERS
    lines: list[str] = []
    with coordinator(tmp_path) as url, running_enclave(url):
        parties = {
            name: Party.create(home=tmp_path / name, name=name, url=url, unencrypted=True)
            for name in MARKET_PARTIES
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
            final = {name: p.client.credits().balance for name, p in parties.items()}
            seller = parties["Seller"].client.credits()
            assert seller.account == account_of(parties["Seller"].party_id)
            trainer_rep = {
                r.role: r for r in parties["Buyer"].reputation(parties["Trainer"].party_id).roles
            }["trainer"]
        finally:
            for p in parties.values():
                p.close()
    text = "\n".join(lines)
    # Act five's first part: 500 granted, 130 negotiated (price 120 + bonus 10) settled.
    start = _balances(lines[_line(lines, "F. ") + 1])
    assert start == {
        "Seller": 130,
        "Buyer": 370,
        "Archive": 0,
        "Curator": 0,
        "Trainer": n["trainer_grant"],
    }
    total = 500 + n["trainer_grant"]
    # The portfolio's reward split: fee first, then the weights; the shares sum to the pledge.
    fee = n["pledge"] * n["fee_bps"] // 10000
    rest = n["pledge"] - fee
    grades, method = rest * n["weight_grades"] // 10000, rest * n["weight_method"] // 10000
    assert fee + grades + method == n["pledge"]
    assert f"pledges {n['pledge']}: Curator {fee}, Seller {grades}, Archive {method}" in text
    paid = _balances(lines[_line(lines, "   trained; the reward is split and paid")])
    assert paid == {
        "Seller": 130 + grades,
        "Buyer": 370,
        "Archive": method,
        "Curator": fee,
        "Trainer": n["trainer_grant"] - n["pledge"],
    }
    # Paid use: the buyer pays the model's price to the trainer, nothing else moves.
    used = _balances(lines[_line(lines, "I. ") + 1])
    price = n["model_price"]
    assert used == {**paid, "Buyer": 370 - price, "Trainer": paid["Trainer"] + price}
    assert re.search(r"provenance: the train-model receipt sha256:", text)
    # Reputation: prior 1/2 over 1000, the buyer's 0.8 weighted by its paid 40.
    expected = (500 + 0.8 * price) / (1000 + price)
    assert f"reputation as trainer: {expected:.6f} (weight {price}" in text
    # The dispute: exactly the disputed amount returns, from the trainer to the buyer.
    before = _balances(lines[_line(lines, "   before: ")])
    after = _balances(lines[_line(lines, "   after: ")])
    assert before == used
    refund = n["disputed"]
    assert after == {
        **before,
        "Buyer": before["Buyer"] + refund,
        "Trainer": before["Trainer"] - refund,
    }
    assert f"reputation: {expected / 2:.6f} (1 upheld against)" in text
    assert trainer_rep.upheld_against == 1
    assert trainer_rep.score == f"{expected / 2:.6f}"
    # No credit created or destroyed: every listed balance sums to what was granted.
    for balances in (start, paid, used, before, after, final):
        assert sum(balances.values()) == total
    assert final == after
    assert any(line.startswith("E. audit") for line in lines)
    assert any(line.startswith("L. audit") for line in lines)
