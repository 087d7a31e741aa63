"""Paid computations end to end on a real coordinator with a priced schedule: the quote before
signing, escrow when approved, settlement to the owners minus the fee when the receipt is
logged, a refund when the requester withdraws, a rejection when the requester cannot pay;
the books recompute from the log."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.coordinator.credits import audit, operator_credits
from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.errors import VerificationFailed
from sealroom.statements import Transfer
from sealroom.storage.engine import create_engine, read_transaction
from sealroom.storage.schema import credit_accounts
from sealroom.wire import CreditsView
from sealroom.wire.credits import WORKED_EXAMPLE, account_of
from tests.client.client_world import AUTO_POLICY, TOPICS_A, TOPICS_B, now, party, write_jsonl
from tests.services import coordinator, registered_enclave


class Lying(Client):
    """A coordinator that misreports the caller's account."""

    lie: CreditsView | None = None

    def credits(self) -> CreditsView:
        assert self.lie is not None
        return self.lie


def test_escrow_settle_refund_and_unpaid_rejection(tmp_path: Path, db_url: str) -> None:
    with coordinator(tmp_path, db_url=db_url, pricing=WORKED_EXAMPLE) as url:
        homes = {}
        clients = {}
        ids = {}
        for name in ("alice", "bob", "carol"):
            homes[name], ids[name] = party(tmp_path, name)
            clients[name] = Client(base_url=url, identity=ids[name])
            clients[name].register_party(name)
        a, b, c = clients["alice"], clients["bob"], clients["carol"]
        pa_ = flows.publish(
            a,
            ids["alice"],
            write_jsonl(tmp_path / "a.jsonl", TOPICS_A),
            title="Alice's log",
            description="notes",
            policy_rules=AUTO_POLICY,
            now=now(),
            home=homes["alice"],
        )
        pc = flows.publish(
            c,
            ids["carol"],
            write_jsonl(tmp_path / "c.jsonl", TOPICS_B, rows=2500),
            title="Carol's log",
            description="notes",
            policy_rules=AUTO_POLICY,
            now=now(),
            home=homes["carol"],
        )
        inputs = [pa_.dataset, pc.dataset]
        assert b.credits_ledger().pricing == WORKED_EXAMPLE

        # The quote, before anything is signed: bob brings no input, so he pays.
        quote = b.quote("topic-overlap", {"top": 10}, inputs, [ids["bob"].party_id])
        assert not quote.free
        assert quote.price == sum(i.amount for i in quote.inputs)
        assert [i.owner for i in quote.inputs] == [ids["alice"].party_id, ids["carol"].party_id]
        assert quote.inputs[1].amount > quote.inputs[0].amount  # more rows cost more
        # The free tier: alice brings an input and every owner gets the result.
        mutual = a.quote(
            "topic-overlap", {"top": 10}, inputs, [ids["alice"].party_id, ids["carol"].party_id]
        )
        assert mutual.free
        assert mutual.price == 0

        # The operator grants bob exactly two computations' worth.
        keystore = CoordinatorKeystore(directory=tmp_path / "coordinator-keys")
        engine = create_engine(db_url)
        try:
            ops = operator_credits(engine, keystore, "sealroom.local/log")
            ops.grant(ids["bob"].party_id, 2 * quote.price, key="welcome", memo="", now=now())
            assert b.credits().balance == 2 * quote.price

            worker = registered_enclave(url)

            def approved_request() -> str:
                view = flows.request(b, ids["bob"], "topic-overlap", inputs, {"top": 10}, now=now())
                for name in ("alice", "carol"):
                    flows.auto_approve(
                        clients[name],
                        ids[name],
                        home=homes[name],
                        allow_simulated=True,
                        now=now(),
                    )
                return view.request

            # 1. Escrow when approved, settlement when the receipt is logged.
            first = approved_request()
            assert flows.status(b, first).status == "approved"
            assert b.credits().balance == quote.price
            assert ops.balance(f"escrow:{first}") == quote.price
            assert worker.step().outcome == "completed"
            assert flows.status(b, first).status == "completed"
            assert ops.balance(f"escrow:{first}") == 0
            fee = quote.fee
            got_a, got_c = a.credits().balance, c.credits().balance
            assert got_a + got_c + fee == quote.price
            assert got_a == quote.inputs[0].amount - quote.inputs[0].amount * 500 // 10_000
            assert ops.balance("platform") == fee
            settle = a.credits().transfers[-1].envelope.open(Transfer).statement
            assert settle.kind == "settle"
            assert settle.cause == flows.status(b, first).receipt

            # 2. Escrow, then the requester withdraws: a full refund.
            second = approved_request()
            assert b.credits().balance == 0
            flows.withdraw(b, second, reason="changed my mind")
            assert flows.status(b, second).status == "withdrawn"
            assert b.credits().balance == quote.price
            assert ops.balance(f"escrow:{second}") == 0
            kinds = [t.envelope.open(Transfer).statement.kind for t in b.credits().transfers]
            assert kinds == ["grant", "escrow", "escrow", "refund"]

            # 3. Bob spends the rest directly, then cannot pay: approval rejects the request.
            b.pay(ids["carol"].party_id, quote.price, key="tip")
            third = approved_request()
            view = flows.status(b, third)
            assert view.status == "rejected"
            assert "balance does not cover" in (view.status_reason or "")
            assert b.credits().balance == 0

            # 4. Negotiated terms: carol offers bob her input at 100 plus a usage bonus of 7.
            offered = flows.offer(
                c,
                ids["carol"],
                pc.dataset,
                "topic-overlap",
                price=100,
                usage_bonus=7,
                requester=ids["bob"].party_id,
                now=now(),
            )
            assert [o.envelope.digest for o in a.offers()] == []  # addressed to bob only
            accepted = flows.accept(b, ids["bob"], offered.envelope.digest, now=now())
            agreed = b.quote(
                "topic-overlap", {"top": 10}, inputs, [ids["bob"].party_id], terms=[accepted]
            )
            assert agreed.negotiated == (pc.dataset,)
            assert [i.amount for i in agreed.inputs] == [quote.inputs[0].amount, 107]
            ops.grant(ids["bob"].party_id, agreed.price, key="more", memo="", now=now())
            carol_before = c.credits().balance
            view = flows.request(
                b, ids["bob"], "topic-overlap", inputs, {"top": 10}, now=now(), terms=[accepted]
            )
            for name in ("alice", "carol"):
                flows.auto_approve(
                    clients[name], ids[name], home=homes[name], allow_simulated=True, now=now()
                )
            assert b.credits().balance == 0
            assert worker.step().outcome == "completed"
            assert c.credits().balance == carol_before + 107 - 107 * 500 // 10_000
            assert flows.status(b, view.request).status == "completed"

            # 5. Base rewards: only for a listed dataset of the answering owner that has earned
            # in a settled paid run, once per period, and only while the pool holds credits.
            empty = flows.answer_liveness(a, ids["alice"], [pa_.dataset], now=now())
            assert [(i.paid, i.reason) for i in empty.items] == [
                (False, "the rewards pool is empty")
            ]
            ops.fund_rewards(120, key="pool", memo="", now=now())
            alice_before = a.credits().balance
            paid = flows.answer_liveness(a, ids["alice"], [pa_.dataset, pc.dataset], now=now())
            assert [(i.amount, i.reason) for i in paid.items] == [
                (3, "paid"),
                (0, "not a listed dataset of yours"),
            ]
            assert a.credits().balance == alice_before + 3
            again = flows.answer_liveness(a, ids["alice"], [pa_.dataset], now=now())
            assert [i.reason for i in again.items] == ["already paid this period"]
            assert ops.balance("rewards") == 117

            # Each party checks its own account: ledger signatures, the log it trusts, the sum,
            # escrows within the max_price it signed; a coordinator that lies is caught.
            for name in ("alice", "bob", "carol"):
                checked = flows.verified_credits(clients[name], ids[name], home=homes[name])
                assert checked.balance == clients[name].credits().balance
            honest = b.credits()
            for lie in (
                honest.model_copy(update={"balance": honest.balance + 1}),
                honest.model_copy(update={"transfers": honest.transfers[1:]}),
                honest.model_copy(update={"transfers": a.credits().transfers}),
            ):
                with Lying(base_url=url, identity=ids["bob"]) as liar:
                    liar.lie = lie
                    with pytest.raises(VerificationFailed):
                        flows.verified_credits(liar, ids["bob"], home=homes["bob"])

            recomputed, stored = audit(engine, ops.ledger.identity.public)
            assert dict(recomputed.accounts) == stored
            with read_transaction(engine) as conn:
                total = conn.execute(select(func.sum(credit_accounts.c.balance))).scalar_one()
            assert int(total) == 0
            assert stored[account_of(ids["carol"].party_id)] == got_c + quote.price + 102
        finally:
            engine.dispose()
