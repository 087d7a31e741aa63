"""The credits ledger on SQLite and PostgreSQL: balanced, idempotent, never overdrawn under
concurrency, never creating or destroying a credit when its process is killed, and
recomputable from the log alone."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from sealroom.coordinator.credits import audit
from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.crypto.keys import Identity, b64encode
from sealroom.errors import (
    IdempotencyMismatch,
    InsufficientCredits,
    InvalidInput,
    NotFound,
    VerificationFailed,
)
from sealroom.statements import Envelope, Transfer, sign_statement
from sealroom.storage.engine import read_transaction
from sealroom.storage.schema import credit_accounts, credit_postings, credit_transfers
from sealroom.wire import DirectTransferBody, RegisterPartyBody
from sealroom.wire.credits import account_of, recompute_balances
from tests.coordinator.coord_helpers import World
from tests.helpers import T0, identity


def register(w: World, who: Identity, name: str) -> None:
    pub = who.public
    body = RegisterPartyBody(
        name=name,
        signing_key=b64encode(pub.signing_key),
        sealing_key=b64encode(pub.sealing_key),
        kem_key=None if pub.kem_key is None else b64encode(pub.kem_key),
    )
    w.c.parties.register(body, caller=who.party_id, now=T0)


def check_books(engine: Engine, ledger: Identity) -> dict[str, int]:
    """Every invariant: zero sum, balances = postings, balances = the log's recomputation."""
    with read_transaction(engine) as conn:
        total = conn.execute(select(func.sum(credit_accounts.c.balance))).scalar_one()
        by_postings = dict(
            conn.execute(
                select(credit_postings.c.account, func.sum(credit_postings.c.amount)).group_by(
                    credit_postings.c.account
                )
            ).all()
        )
    recomputed, stored = audit(engine, ledger.public)
    assert int(total or 0) == 0
    assert {a: int(b) for a, b in by_postings.items()} == stored
    assert dict(recomputed.accounts) == stored
    return stored


def test_grant_pay_idempotency_and_overdraft(w: World) -> None:
    register(w, w.requester, "requester")
    register(w, w.owner, "owner")
    ledger = w.c.credits.ledger.identity
    first = w.c.credits.grant(w.requester.party_id, 100, key="g1", memo="welcome", now=T0)
    again = w.c.credits.grant(w.requester.party_id, 100, key="g1", memo="welcome", now=T0 + 5)
    assert first.created
    assert not again.created
    assert again.transfer.digest == first.transfer.digest
    with pytest.raises(IdempotencyMismatch):
        w.c.credits.grant(w.requester.party_id, 101, key="g1", memo="welcome", now=T0)
    pay = DirectTransferBody(to=w.owner.party_id, amount=30, key="p1", memo="thanks")
    view = w.c.credits.transfer(pay, caller=w.requester.party_id, now=T0 + 1).view
    t = view.envelope.open(Transfer).statement
    assert t.seq == 1
    assert t.prev == first.transfer.digest
    assert t.kind == "transfer"
    assert view.salt is not None  # transfers are private: logged as salted commitments
    with pytest.raises(InsufficientCredits):
        w.c.credits.transfer(
            DirectTransferBody(to=w.owner.party_id, amount=71, key="p2"),
            caller=w.requester.party_id,
            now=T0 + 2,
        )
    with pytest.raises(NotFound):
        w.c.credits.grant(w.stranger.party_id, 5, key="g2", memo="", now=T0)
    with pytest.raises(InvalidInput):
        w.c.credits.transfer(
            DirectTransferBody(to=w.requester.party_id, amount=1, key="p3"),
            caller=w.requester.party_id,
            now=T0,
        )
    books = check_books(w.c.state.engine, ledger)
    assert books[account_of(w.requester.party_id)] == 70
    assert books[account_of(w.owner.party_id)] == 30
    assert books["issuance"] == -100
    mine = w.c.credits.account(caller=w.owner.party_id)
    assert mine.balance == 30
    assert [v.envelope.digest for v in mine.transfers] == [view.envelope.digest]


def test_the_audit_catches_a_missing_reordered_or_forged_transfer(w: World) -> None:
    register(w, w.requester, "requester")
    register(w, w.owner, "owner")
    for n in range(3):
        w.c.credits.grant(w.requester.party_id, 10, key=f"g{n}", memo="", now=T0)
    recomputed, stored = audit(w.c.state.engine, w.c.credits.ledger.identity.public)
    assert recomputed.transfers == 3
    assert dict(recomputed.accounts) == stored
    # Logged in clear (salt None), the same transfers recompute the same way.
    opened: list[tuple[bytes, Envelope, bytes | None]] = [
        (v.envelope.to_json(), v.envelope, None)
        for v in w.c.credits.account(caller=w.requester.party_id).transfers
    ]
    ledger = w.c.credits.ledger.identity.public
    assert recompute_balances(opened, ledger).accounts[account_of(w.requester.party_id)] == 30
    with pytest.raises(VerificationFailed, match="expected 1"):
        recompute_balances([opened[0], opened[2]], ledger)
    with pytest.raises(VerificationFailed, match="expected 0"):
        recompute_balances(opened[1:], ledger)
    with pytest.raises(VerificationFailed):
        recompute_balances([(b"{}", opened[0][1], bytes(32))], ledger)  # not its log entry
    with pytest.raises(VerificationFailed, match="not signed by the ledger key"):
        recompute_balances(opened, w.owner.public)


def test_fifty_concurrent_spends_against_ten_settle_exactly_ten(w: World) -> None:
    register(w, w.requester, "requester")
    register(w, w.owner, "owner")
    w.c.credits.grant(w.requester.party_id, 10, key="g", memo="", now=T0)

    def spend(n: int) -> bool:
        try:
            w.c.credits.transfer(
                DirectTransferBody(to=w.owner.party_id, amount=1, key=f"spend-{n}"),
                caller=w.requester.party_id,
                now=T0 + 1,
            )
        except InsufficientCredits:
            return False
        return True

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(spend, range(50)))
    assert sum(outcomes) == 10
    books = check_books(w.c.state.engine, w.c.credits.ledger.identity)
    assert books[account_of(w.requester.party_id)] == 0
    assert books[account_of(w.owner.party_id)] == 10


# --- SIGKILL during settlement -------------------------------------------------------------

_PAYER = account_of(identity("payer").party_id)
_OWNERS = [account_of(identity(f"owner-{i}").party_id) for i in range(3)]
ROUNDS = int(os.environ.get("SEALROOM_CREDITS_CRASH_ROUNDS", "100"))


def _settlement_loop(url: str, keys: str, start: int, ready: Any, commits: Any) -> None:
    """A process that escrows, settles and refunds as fast as it can until it is killed."""
    from sealroom.computations.registry import Registry
    from sealroom.coordinator.credits import ledger_identity, post
    from sealroom.coordinator.state import State
    from sealroom.storage.engine import create_engine, write_transaction
    from sealroom.wire.credits import settlement_postings

    engine = create_engine(url)
    keystore = CoordinatorKeystore(directory=Path(keys))
    state = State(engine=engine, registry=Registry([]), signer=keystore.log_signer(engine, "t/log"))
    ledger = ledger_identity(keystore, engine)
    with write_transaction(engine) as conn:  # what a restarted coordinator's sweep does
        dangling = conn.execute(
            select(credit_accounts.c.account, credit_accounts.c.balance).where(
                credit_accounts.c.account.like("escrow:%"), credit_accounts.c.balance > 0
            )
        ).all()
        for account, held in dangling:
            post(
                state,
                ledger,
                conn,
                key=f"recover:{account}",
                kind="refund",
                cause=None,
                postings=[(account, -int(held)), (_PAYER, int(held))],
                memo="",
                now=T0,
            )
    ready.set()
    n = start
    while True:
        n += 1
        escrow = f"escrow:sha256:{n:064x}"
        with write_transaction(engine) as conn:
            post(
                state,
                ledger,
                conn,
                key=f"e{n}",
                kind="escrow",
                cause=None,
                postings=[(_PAYER, -30), (escrow, 30)],
                memo="",
                now=T0 + n,
            )
        commits.value += 1
        with write_transaction(engine) as conn:
            if n % 3:
                shares = [(a.removeprefix("party:"), 10) for a in _OWNERS]
                post(
                    state,
                    ledger,
                    conn,
                    key=f"s{n}",
                    kind="settle",
                    cause=None,
                    postings=settlement_postings(escrow, shares, 500),
                    memo="",
                    now=T0 + n,
                )
            else:
                post(
                    state,
                    ledger,
                    conn,
                    key=f"r{n}",
                    kind="refund",
                    cause=None,
                    postings=[(escrow, -30), (_PAYER, 30)],
                    memo="",
                    now=T0 + n,
                )
        commits.value += 1


def test_sigkill_during_settlement_never_creates_or_destroys_a_credit(
    engine: Engine, keystore: CoordinatorKeystore
) -> None:
    from sealroom.computations.registry import Registry
    from sealroom.coordinator.credits import ledger_identity, post
    from sealroom.coordinator.state import State
    from sealroom.storage.engine import write_transaction

    state = State(engine=engine, registry=Registry([]), signer=keystore.log_signer(engine, "t/log"))
    ledger = ledger_identity(keystore, engine)
    with write_transaction(engine) as conn:
        post(
            state,
            ledger,
            conn,
            key="seed",
            kind="grant",
            cause=None,
            postings=[("issuance", -(10**9)), (_PAYER, 10**9)],
            memo="",
            now=T0,
        )
    url = engine.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(16)
    engine.dispose()  # the children open their own connections
    deadline = time.monotonic() + 50
    rounds = 0
    while rounds < ROUNDS and time.monotonic() < deadline:
        ready = ctx.Event()
        commits = ctx.Value("i", 0)
        with read_transaction(engine) as conn:
            done = conn.execute(select(func.count()).select_from(credit_transfers)).scalar_one()
        child = ctx.Process(
            target=_settlement_loop,
            args=(url, str(keystore.directory), done * 10, ready, commits),
        )
        child.start()
        assert ready.wait(30)
        # A random point: after 0-5 commits (however loaded the machine), then up to 10 ms
        # further, inside or between transactions.
        target = rng.randint(0, 5)
        waited = time.monotonic() + 30
        while commits.value < target and time.monotonic() < waited:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.01))
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
        with read_transaction(engine) as conn:
            total = conn.execute(select(func.sum(credit_accounts.c.balance))).scalar_one()
            payer = conn.execute(
                select(credit_accounts.c.balance).where(credit_accounts.c.account == _PAYER)
            ).scalar_one()
            held = conn.execute(
                select(func.coalesce(func.sum(credit_accounts.c.balance), 0)).where(
                    credit_accounts.c.account.like("escrow:%")
                )
            ).scalar_one()
            paid = conn.execute(
                select(func.coalesce(func.sum(credit_accounts.c.balance), 0)).where(
                    credit_accounts.c.account.in_([*_OWNERS, "platform"])
                )
            ).scalar_one()
        assert int(total) == 0
        assert int(payer) + int(held) + int(paid) == 10**9
        assert int(held) in (0, 30)  # at most the one escrow the kill interrupted
        rounds += 1
    assert rounds >= min(ROUNDS, 30), rounds
    print(f"{rounds} SIGKILLs survived")
    books = check_books(engine, ledger)
    assert sum(books.values()) == 0
    with read_transaction(engine) as conn:
        kinds = dict(
            conn.execute(
                select(credit_transfers.c.kind, func.count()).group_by(credit_transfers.c.kind)
            ).all()
        )
    assert kinds.get("settle", 0) > 0
    assert kinds.get("refund", 0) > 0


def test_a_transfer_statement_must_balance() -> None:
    ledger = identity("ledger")
    base = {
        "ledger": ledger.party_id,
        "seq": 0,
        "prev": None,
        "key": "k",
        "kind": "grant",
        "cause": None,
        "memo": "",
        "created_at": T0,
    }
    good = ({"account": "issuance", "amount": -5}, {"account": "platform", "amount": 5})
    assert Transfer.model_validate({**base, "postings": good}).postings[1].amount == 5
    for bad in (
        ({"account": "issuance", "amount": -5}, {"account": "platform", "amount": 4}),
        ({"account": "platform", "amount": 0}, {"account": "issuance", "amount": 0}),
        ({"account": "platform", "amount": 5}, {"account": "platform", "amount": -5}),
        ({"account": "bank", "amount": 5}, {"account": "issuance", "amount": -5}),
    ):
        with pytest.raises(ValueError, match="validation error"):
            Transfer.model_validate({**base, "postings": bad})
    env = sign_statement(Transfer.model_validate({**base, "postings": good}), ledger).envelope
    assert Envelope.from_json(env.to_json()).digest == env.digest


def test_liveness_needs_this_periods_challenge_and_an_earning_dataset(w: World) -> None:
    from sealroom.errors import AuthenticationFailed as Invalid
    from sealroom.statements import Liveness

    register(w, w.owner, "owner")
    now = T0 + 100
    ch = w.c.credits.challenge(caller=w.owner.party_id, now=now)

    def answer(period: int, challenge: str) -> Envelope:
        live = Liveness(
            owner=w.owner.party_id,
            datasets=(w.dataset,),
            period=period,
            challenge=challenge,
            created_at=now,
        )
        return sign_statement(live, w.owner).envelope

    other = w.c.credits.challenge(caller=w.requester.party_id, now=now).challenge
    with pytest.raises(Invalid, match="challenge"):
        w.c.credits.liveness(answer(ch.period, other), caller=w.owner.party_id, now=now)
    with pytest.raises(Invalid, match="period"):
        w.c.credits.liveness(answer(ch.period - 1, ch.challenge), caller=w.owner.party_id, now=now)
    view = w.c.credits.liveness(answer(ch.period, ch.challenge), caller=w.owner.party_id, now=now)
    # Without --pricing no base reward is paid; with it, a never-used dataset earns nothing.
    assert [i.reason for i in view.items] == ["this coordinator pays no base reward"]
    from sealroom.coordinator.credits import CreditLedger, Credits
    from sealroom.wire.credits import WORKED_EXAMPLE

    priced = Credits(
        w.c.state, CreditLedger(identity=w.c.credits.ledger.identity, pricing=WORKED_EXAMPLE)
    )
    priced.fund_rewards(1000, key="pool", memo="", now=now)
    ch = priced.challenge(caller=w.owner.party_id, now=now)
    view = priced.liveness(answer(ch.period, ch.challenge), caller=w.owner.party_id, now=now)
    assert [i.reason for i in view.items] == [
        "not used in a settled paid computation in the last 30 periods"
    ]
    assert priced.balance("rewards") == 1000


def test_escrow_happens_once_and_closes_once(w: World) -> None:
    """A request approved again (a lapsed lease re-queues it) is not escrowed twice, and an
    escrow settles or refunds once; an unpaid requester gets a reason, not an error."""
    from sealroom.coordinator.credits import CreditLedger
    from sealroom.storage.engine import write_transaction
    from sealroom.wire.credits import WORKED_EXAMPLE

    register(w, w.requester, "requester")
    register(w, w.owner, "owner")
    ledger = CreditLedger(identity=w.c.credits.ledger.identity, pricing=WORKED_EXAMPLE)
    rid = w.request((w.dataset,))
    with write_transaction(w.c.state.engine) as conn:
        refusal = ledger.escrow(w.c.state, conn, rid, T0 + 20)
    assert refusal is not None
    assert "does not cover" in refusal
    w.c.credits.grant(w.requester.party_id, 10_000, key="g", memo="", now=T0)
    for _ in range(2):
        with write_transaction(w.c.state.engine) as conn:
            assert ledger.escrow(w.c.state, conn, rid, T0 + 20) is None
    held = w.c.credits.balance(f"escrow:{rid}")
    assert held > 0
    assert w.c.credits.balance(account_of(w.requester.party_id)) == 10_000 - held
    for _ in range(2):
        with write_transaction(w.c.state.engine) as conn:
            ledger.close(w.c.state, conn, rid, "expired", T0 + 30)
    assert w.c.credits.balance(account_of(w.requester.party_id)) == 10_000
    assert w.c.credits.balance(f"escrow:{rid}") == 0
    check_books(w.c.state.engine, ledger.identity)


def test_a_signed_max_price_bounds_the_escrow(w: World) -> None:
    from sealroom.coordinator.credits import CreditLedger
    from sealroom.statements import ComputationRequest
    from sealroom.storage.engine import write_transaction
    from sealroom.wire.credits import WORKED_EXAMPLE

    register(w, w.requester, "requester")
    register(w, w.owner, "owner")
    w.c.credits.grant(w.requester.party_id, 10_000, key="g", memo="", now=T0)
    ledger = CreditLedger(identity=w.c.credits.ledger.identity, pricing=WORKED_EXAMPLE)
    capped = w.request((w.dataset,), max_price=1, nonce=2)
    with write_transaction(w.c.state.engine) as conn:
        refusal = ledger.escrow(w.c.state, conn, capped, T0 + 20)
    assert refusal is not None
    assert "signed max_price of 1" in refusal
    assert w.c.credits.balance(account_of(w.requester.party_id)) == 10_000
    # Requests that name no cap or terms keep the bytes (and digests) they had before.
    plain = w.request((w.dataset,), nonce=3)
    stored = w.c.requests.get(plain, caller=w.requester.party_id, now=T0 + 20).envelope
    payload = ComputationRequest.parse_payload(stored.payload)
    assert payload.max_price is None
    assert b"max_price" not in stored.payload
    assert b"terms" not in stored.payload


def test_pay_splits_among_payees_less_the_fee_once(w: World) -> None:
    """The API other services use (paid model use, a curator's share): one payer, several
    payees, the platform's fee, idempotent, never overdrawn."""
    from sealroom.coordinator.credits import ledger_of
    from sealroom.storage.engine import write_transaction

    for who, name in ((w.requester, "requester"), (w.owner, "owner"), (w.stranger, "stranger")):
        register(w, who, name)
    w.c.credits.grant(w.requester.party_id, 1000, key="g", memo="", now=T0)
    ledger = ledger_of(w.c.state)
    payees = [(w.owner.party_id, 301), (w.stranger.party_id, 99)]
    for _ in range(2):
        with write_transaction(w.c.state.engine) as conn:
            posted = ledger.pay(
                w.c.state,
                conn,
                payer=w.requester.party_id,
                payees=payees,
                key="model-use-1",
                cause=None,
                memo="predict",
                now=T0 + 1,
                fee_bps=500,
            )
    assert not posted.created
    books = check_books(w.c.state.engine, ledger.identity)
    assert books[account_of(w.requester.party_id)] == 600
    assert books[account_of(w.owner.party_id)] == 301 - 15
    assert books[account_of(w.stranger.party_id)] == 99 - 4
    assert books["platform"] == 19
    with pytest.raises(InsufficientCredits), write_transaction(w.c.state.engine) as conn:
        ledger.pay(
            w.c.state,
            conn,
            payer=w.requester.party_id,
            payees=[(w.owner.party_id, 601)],
            key="model-use-2",
            cause=None,
            memo="",
            now=T0 + 2,
        )
    with pytest.raises(InvalidInput), write_transaction(w.c.state.engine) as conn:
        ledger.pay(
            w.c.state,
            conn,
            payer=w.owner.party_id,
            payees=[(w.owner.party_id, 1)],
            key="self",
            cause=None,
            memo="",
            now=T0 + 2,
        )
    assert check_books(w.c.state.engine, ledger.identity) == books


def test_the_marketplace_charges_through_the_ledger(w: World) -> None:
    """The default Payments seam of a coordinator is this ledger: declined without funds,
    idempotent by key, refunds, every move a logged transfer that the audit recomputes."""
    from sealroom.coordinator.credits import LedgerPayments, ledger_of
    from sealroom.coordinator.payments import PaymentDeclined
    from sealroom.errors import Conflict

    register(w, w.requester, "requester")
    register(w, w.owner, "owner")
    pay = LedgerPayments(w.c.state, ledger_of(w.c.state), clock=lambda: T0 + 9)
    user, trainer = w.requester.party_id, w.owner.party_id
    with pytest.raises(PaymentDeclined):
        pay.charge(payer=user, payee=trainer, amount=5, idempotency_key="use:1", memo="predict")
    w.c.credits.grant(user, 20, key="g", memo="", now=T0)
    for _ in range(2):
        done = pay.charge(payer=user, payee=trainer, amount=5, idempotency_key="use:1", memo="p")
    assert done.amount == 5
    with pytest.raises(Conflict):
        pay.charge(payer=user, payee=trainer, amount=6, idempotency_key="use:1", memo="p")
    pay.refund(payer=trainer, payee=user, amount=2, idempotency_key="dispute:1", memo="upheld")
    assert (
        pay.charge(payer=user, payee=trainer, amount=0, idempotency_key="free", memo="").amount == 0
    )
    books = check_books(w.c.state.engine, w.c.credits.ledger.identity)
    assert books[account_of(user)] == 17
    assert books[account_of(trainer)] == 3
    assert w.c.market is not None
