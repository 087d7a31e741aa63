"""The console's Credits page over HTTP against a real coordinator: the balance verified
against the ledger key and the log, the recent transfers with their counterparties, and the
party's reputation per role."""

from __future__ import annotations

import re
from pathlib import Path

from sealroom.coordinator.credits import operator_credits
from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.storage.engine import create_engine
from tests.web.console_world import world


def _rows(html: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table class="list" id="{table}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body is not None, html
    rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]
    return [[re.sub(r"<[^>]+>", " ", c).split("  ")[0].strip() for c in row] for row in cells]


def test_credits_page_shows_verified_balance_transfers_and_reputation(tmp_path: Path) -> None:
    with world(tmp_path, enclave=False) as w:
        r, o = w.requester, w.owner
        with r.browser_client() as rb, o.browser_client() as ob:
            empty = ob.get("/credits")
            assert empty.status_code == 200
            assert '<strong id="balance">0</strong>' in empty.text
            assert "No transfer has touched your account yet." in empty.text
            assert '<a href="/credits" aria-current="page">Credits</a>' in empty.text
            assert '<a href="/credits" >Credits</a>' in ob.get("/").text

            engine = create_engine(f"sqlite:///{tmp_path / 'coordinator.db'}")
            try:
                keys = CoordinatorKeystore(directory=tmp_path / "coordinator-keys")
                ops = operator_credits(engine, keys, "sealroom.local/log")
                ops.grant(
                    r.party.party_id, 100, key="welcome", memo="welcome credits", now=r.party.now()
                )
            finally:
                engine.dispose()
            r.party.client.pay(o.party.party_id, 25, key="tip-1", memo="for the notes")

            mine = rb.get("/credits")
            assert mine.status_code == 200, mine.text
            assert '<strong id="balance">75</strong>' in mine.text
            assert "each of your 2 transfers" in mine.text
            # Newest first: the payment to otto, then the operator's grant from issuance.
            [paid, granted] = _rows(mine.text, "transfers")
            assert paid[1:3] == ["transfer", "-25"]
            assert paid[3].startswith("otto · ")
            assert paid[4] == "for the notes"
            assert granted[1:5] == ["grant", "+100", "issuance", "welcome credits"]
            theirs = ob.get("/credits")
            assert '<strong id="balance">25</strong>' in theirs.text
            [paid] = _rows(theirs.text, "transfers")
            assert paid[1:3] == ["transfer", "+25"]
            assert paid[3].startswith("rhea")
            # Reputation per role: nobody has rated anything yet, so every role has the prior.
            roles = {row[0]: row[1:] for row in _rows(theirs.text, "reputation")}
            assert set(roles) == {"trainer", "evaluator", "owner", "curator"}
            assert all(v == ["0.500000", "0", "0", "0"] for v in roles.values())
            assert "Disputes you filed: 0" in theirs.text
