"""The marketplace formulas: exact values, the worked examples of docs/marketplace-models.md,
and the sybil attack on reputation."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealroom.coordinator.market_formulas import (
    RATER_CAP,
    PaidUse,
    Rating,
    Share,
    reputation,
    split_reward,
)
from sealroom.coordinator.payments import InMemoryPayments, NoPayments, PaymentDeclined
from sealroom.errors import Conflict, InvalidInput

D1, D2, D3 = "sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "3" * 64


def test_split_worked_example_exact() -> None:
    # docs/marketplace-models.md, "Portfolio reward split".
    shares = split_reward(
        1001,
        [(D1, "alice", 3334), (D2, "bob", 3333), (D3, "carol", 3333)],
        curator="cora",
        fee=250,
    )
    assert shares == (
        Share("cora", None, 25),
        Share("alice", D1, 326),
        Share("bob", D2, 325),
        Share("carol", D3, 325),
    )


def test_split_largest_remainder_ties_go_to_the_smaller_digest() -> None:
    shares = split_reward(
        2, [(D2, "b", 3333), (D1, "a", 3333), (D3, "c", 3334)], curator="x", fee=0
    )
    # R = 2: floors 0, 0, 0; remainders 6666, 6666, 6668 -> c then a (D1 < D2).
    assert [(s.payee, s.amount) for s in shares] == [("x", 0), ("b", 0), ("a", 1), ("c", 1)]


def test_split_one_owner_with_two_datasets_and_no_fee() -> None:
    shares = split_reward(500, [(D1, "alice", 6000), (D2, "alice", 4000)], curator="c", fee=0)
    assert sum(s.amount for s in shares if s.payee == "alice") == 500


@given(
    amount=st.integers(0, 10**12),
    fee=st.integers(0, 10_000),
    cuts=st.lists(st.integers(1, 9_999), min_size=0, max_size=6, unique=True),
)
def test_split_always_sums_exactly(amount: int, fee: int, cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), 10_000]
    weights = [b - a for a, b in itertools.pairwise(bounds) if b > a]
    items = [(f"sha256:{i:064x}", f"o{i}", w) for i, w in enumerate(weights)]
    shares = split_reward(amount, items, curator="cur", fee=fee)
    assert sum(s.amount for s in shares) == amount
    assert shares[0].amount == amount * fee // 10_000
    rest = amount - shares[0].amount
    for s, (_, _, wt) in zip(shares[1:], items, strict=True):
        assert abs(s.amount - Fraction(rest * wt, 10_000)) < 1


@pytest.mark.parametrize(
    ("amount", "items", "fee"),
    [
        (-1, [(D1, "a", 10_000)], 0),
        (10, [(D1, "a", 5000)], 0),
        (10, [(D1, "a", 5000), (D1, "b", 5000)], 0),
        (10, [(D1, "a", 10_000)], 10_001),
        (10, [], 0),
    ],
)
def test_split_refuses_bad_input(amount: int, items: list[tuple[str, str, int]], fee: int) -> None:
    with pytest.raises(InvalidInput):
        split_reward(amount, items, curator="c", fee=fee)


def test_reputation_worked_example_exact() -> None:
    # docs/marketplace-models.md, "Reputation": alice paid 3000 and rates 0.9, bob paid 1000
    # and rates 0.5; 0.74 before disputes, 0.37 after one upheld dispute.
    uses = [PaidUse("alice", "m", 1000), PaidUse("alice", "m", 2000), PaidUse("bob", "m", 1000)]
    ratings = [Rating("alice", "m", Fraction(9, 10), 1), Rating("bob", "m", Fraction(1, 2), 1)]
    r = reputation("tina", ratings, uses)
    assert r.score == Fraction(37, 50)
    assert (r.score_text, r.weight, r.raters, r.ignored) == ("0.740000", 4000, 2, 0)
    r = reputation("tina", ratings, uses, upheld_against=1)
    assert r.score == Fraction(37, 100)
    assert r.score_text == "0.370000"


def test_reputation_of_nobody_is_the_prior() -> None:
    r = reputation("tina", [], [])
    assert r.score == Fraction(1, 2)
    assert r.weight == 0


def test_sybil_attack_100_fresh_identities_cannot_move_a_score() -> None:
    uses = [PaidUse("alice", "m", 3000), PaidUse("bob", "m", 1000)]
    honest = [Rating("alice", "m", Fraction(9, 10), 1), Rating("bob", "m", Fraction(1, 2), 1)]
    before = reputation("tina", honest, uses)
    # 100 fresh identities rate 0 (or 1) with no paid use of the model: they weigh nothing.
    for value in (Fraction(0), Fraction(1)):
        sybils = [Rating(f"sybil{i}", "m", value, 2) for i in range(100)]
        after = reputation("tina", honest + sybils, uses)
        assert after.score == before.score
        assert after.ignored == 100
    # Nor do identities that paid for some OTHER item (weight is per rated item) ...
    other = [PaidUse(f"sybil{i}", "other-model", 10_000) for i in range(100)]
    sybils = [Rating(f"sybil{i}", "m", Fraction(0), 2) for i in range(100)]
    assert reputation("tina", honest + sybils, uses + other).score == before.score
    # ... nor the subject rating itself, however much it paid.
    self_rating = [Rating("tina", "m", Fraction(1), 3)]
    assert (
        reputation("tina", honest + self_rating, [*uses, PaidUse("tina", "m", 10**9)]).score
        == before.score
    )


def test_a_rich_rater_is_capped_and_only_the_latest_rating_counts() -> None:
    uses = [PaidUse("whale", "m", 10**12)]
    r = reputation(
        "tina",
        [Rating("whale", "m", Fraction(1), 1), Rating("whale", "m", Fraction(0), 2)],
        uses,
    )
    assert r.weight == RATER_CAP
    assert r.score == Fraction(500, 1000 + RATER_CAP)


def test_reputation_refuses_out_of_range_values() -> None:
    with pytest.raises(InvalidInput):
        reputation("t", [Rating("a", "m", Fraction(3, 2), 1)], [])
    with pytest.raises(InvalidInput):
        reputation("t", [], [PaidUse("a", "m", -1)])
    with pytest.raises(InvalidInput):
        reputation("t", [], [], upheld_against=-1)


def test_in_memory_payments_are_idempotent_and_never_overdraw() -> None:
    p = InMemoryPayments({"u": 100})
    first = p.charge(payer="u", payee="t", amount=60, idempotency_key="k1", memo="use")
    assert p.charge(payer="u", payee="t", amount=60, idempotency_key="k1", memo="use") == first
    assert (p.balance("u"), p.balance("t")) == (40, 60)
    with pytest.raises(PaymentDeclined):
        p.charge(payer="u", payee="t", amount=41, idempotency_key="k2", memo="use")
    assert (p.balance("u"), p.balance("t")) == (40, 60)
    with pytest.raises(Conflict):
        p.charge(payer="u", payee="t", amount=1, idempotency_key="k1", memo="use")
    p.refund(payer="t", payee="u", amount=10, idempotency_key="r1", memo="dispute")
    assert (p.balance("u"), p.balance("t")) == (50, 50)
    with pytest.raises(InvalidInput):
        p.charge(payer="u", payee="u", amount=1, idempotency_key="k3", memo="self")
    with pytest.raises(InvalidInput):
        p.charge(payer="u", payee="t", amount=-1, idempotency_key="k4", memo="neg")


def test_no_payments_allows_free_use_only() -> None:
    p = NoPayments()
    assert p.charge(payer="u", payee="t", amount=0, idempotency_key="k", memo="free").amount == 0
    with pytest.raises(PaymentDeclined, match="no payments backend"):
        p.charge(payer="u", payee="t", amount=1, idempotency_key="k", memo="paid")
