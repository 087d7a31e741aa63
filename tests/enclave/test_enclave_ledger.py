"""The budget ledger: exact, atomic, idempotent, and refusing with a specific reason."""

from __future__ import annotations

import multiprocessing
import threading
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealroom.computations import default_registry
from sealroom.enclave.ledger import SqlBudgetLedger
from sealroom.errors import PolicyDenied
from sealroom.policy.privacy import PrivacyCost
from sealroom.policy.rules import PolicyRules
from sealroom.statements.fields import canonical_decimal
from tests.enclave.ledger_helpers import DATASET, budget_rules, charge_in_process, req


@pytest.fixture
def ledger(db_url: str) -> SqlBudgetLedger:
    led = SqlBudgetLedger.open(db_url)
    yield led  # type: ignore[misc]
    led.close()


def eps(x: str) -> PrivacyCost:
    return PrivacyCost(epsilon=Decimal(x))


def test_ten_charges_of_a_tenth_exhaust_one_exactly(ledger: SqlBudgetLedger) -> None:
    rules = budget_rules(epsilon_per_requester="1", epsilon_total="5")
    for i in range(10):
        ledger.charge(
            dataset=DATASET, requester="alice", cost=eps("0.1"), request=req(i), now=1, rules=rules
        )
    assert ledger.spent(dataset=DATASET, requester="alice") == (Decimal("1.0"), Decimal(0))
    with pytest.raises(
        PolicyDenied, match=r"per-requester epsilon budget 1 has 0 left; this run needs 0.1"
    ):
        ledger.charge(
            dataset=DATASET, requester="alice", cost=eps("0.1"), request=req(10), now=1, rules=rules
        )
    # Another requester has its own per-requester budget but shares the total.
    ledger.charge(
        dataset=DATASET, requester="bob", cost=eps("1"), request=req(11), now=1, rules=rules
    )


def test_total_and_delta_budgets(ledger: SqlBudgetLedger) -> None:
    rules = budget_rules(
        epsilon_per_requester="1",
        epsilon_total="1.5",
        delta_per_requester="0.00001",
        delta_total="0.00001",
    )
    ledger.charge(dataset=DATASET, requester="a", cost=eps("1"), request=req(1), now=1, rules=rules)
    with pytest.raises(PolicyDenied, match=r"the total epsilon budget 1.5 has 0.5 left"):
        ledger.charge(
            dataset=DATASET, requester="b", cost=eps("0.6"), request=req(2), now=1, rules=rules
        )
    both = PrivacyCost(epsilon=Decimal("0.1"), delta=Decimal("0.00001"))
    ledger.charge(dataset=DATASET, requester="b", cost=both, request=req(3), now=1, rules=rules)
    with pytest.raises(PolicyDenied, match=r"per-requester delta budget 0.00001 has 0 left"):
        ledger.charge(dataset=DATASET, requester="b", cost=both, request=req(4), now=1, rules=rules)


def test_retry_reuses_the_charge(ledger: SqlBudgetLedger) -> None:
    rules = budget_rules(epsilon_per_requester="1", epsilon_total="1")
    first = ledger.charge(
        dataset=DATASET, requester="a", cost=eps("1"), request=req(1), now=5, rules=rules
    )
    again = ledger.charge(
        dataset=DATASET, requester="a", cost=eps("1"), request=req(1), now=9, rules=rules
    )
    assert not first.reused
    assert again.reused
    assert again.charged_at == 5
    assert ledger.spent(dataset=DATASET) == (Decimal(1), Decimal(0))


def test_dp_cost_without_budget_refused(ledger: SqlBudgetLedger) -> None:
    for rules in (None, PolicyRules.parse({"allow": [{"id": "x"}]})):
        with pytest.raises(PolicyDenied, match="the policy sets none"):
            ledger.charge(
                dataset=DATASET, requester="a", cost=eps("0.1"), request=req(1), now=1, rules=rules
            )
    # A zero cost needs no budget.
    ledger.charge(
        dataset=DATASET, requester="a", cost=PrivacyCost(), request=req(1), now=1, rules=None
    )


def test_query_limit_per_period(ledger: SqlBudgetLedger) -> None:
    rules = PolicyRules.parse(
        {"allow": [{"id": "x"}], "max_queries": {"count": 2, "period_seconds": 100}}
    )
    zero = PrivacyCost()
    for i, t in enumerate((1000, 1050)):
        ledger.charge(dataset=DATASET, requester="a", cost=zero, request=req(i), now=t, rules=rules)
    with pytest.raises(PolicyDenied, match=r"has used 2 of 2 queries in the last 100 s"):
        ledger.charge(
            dataset=DATASET, requester="a", cost=zero, request=req(7), now=1099, rules=rules
        )
    ledger.charge(dataset=DATASET, requester="b", cost=zero, request=req(8), now=1099, rules=rules)
    # The first query leaves the window at 1100.
    ledger.charge(dataset=DATASET, requester="a", cost=zero, request=req(9), now=1100, rules=rules)


def test_twenty_threads_against_a_budget_for_one(ledger: SqlBudgetLedger) -> None:
    rules = budget_rules(epsilon_per_requester="1", epsilon_total="1")
    granted: list[int] = []
    denied: list[int] = []
    barrier = threading.Barrier(20)

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            ledger.charge(
                dataset=DATASET, requester="a", cost=eps("1"), request=req(i), now=1, rules=rules
            )
            granted.append(i)
        except PolicyDenied:
            denied.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 1
    assert len(denied) == 19
    assert ledger.spent(dataset=DATASET) == (Decimal(1), Decimal(0))


def test_twenty_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'budget.db'}"
    SqlBudgetLedger.open(url).close()  # create the tables once
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(20) as pool:
        results = pool.starmap(charge_in_process, [(url, i) for i in range(20)])
    assert sum(results) == 1
    led = SqlBudgetLedger.open(url)
    assert led.spent(dataset=DATASET) == (Decimal(1), Decimal(0))
    led.close()


_amounts = st.decimals(min_value=Decimal(0), max_value=Decimal(2), places=3)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    budget=st.decimals(min_value=Decimal("0.001"), max_value=Decimal(3), places=3),
    amounts=st.lists(_amounts, max_size=12),
)
def test_charges_never_exceed_the_budget_and_sum_exactly(
    tmp_path_factory: pytest.TempPathFactory, budget: Decimal, amounts: list[Decimal]
) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('prop') / 'b.db'}"
    ledger = SqlBudgetLedger.open(url)
    b = canonical_decimal(budget)
    rules = budget_rules(epsilon_per_requester=b, epsilon_total=b)
    expected = Decimal(0)
    for i, amount in enumerate(amounts):
        cost = PrivacyCost(epsilon=amount)
        try:
            ledger.charge(
                dataset=DATASET, requester="a", cost=cost, request=req(i), now=1, rules=rules
            )
            expected += amount
        except PolicyDenied:
            assert expected + amount > budget
    spent, _ = ledger.spent(dataset=DATASET)
    assert spent == expected
    assert spent <= budget
    ledger.close()


# --- bit budgets (quality-score) -------------------------------------------------------

QUALITY = default_registry().get("quality-score")


def bit_rules(per_requester: str, total: str) -> PolicyRules:
    return PolicyRules.parse(
        {"allow": [{"id": "x"}], "bits": {"per_requester": per_requester, "total": total}}
    )


def test_the_budget_refuses_the_run_after_the_last_one_it_covers(ledger: SqlBudgetLedger) -> None:
    cost = QUALITY.cost(QUALITY.parse_params({}))  # 6.672426 bits
    n = 3
    rules = bit_rules(str(cost.bits * n), str(cost.bits * 2 * n))
    for i in range(n):
        charge = ledger.charge(
            dataset=DATASET, requester="buyer", cost=cost, request=req(i), now=1, rules=rules
        )
        assert charge.bits == cost.bits
    with pytest.raises(PolicyDenied, match=r"per-requester bit budget .* has 0 left"):
        ledger.charge(
            dataset=DATASET, requester="buyer", cost=cost, request=req(n), now=1, rules=rules
        )
    # A retried job reuses its charge; a fresh identity has its own per-requester budget...
    assert ledger.charge(
        dataset=DATASET, requester="buyer", cost=cost, request=req(0), now=1, rules=rules
    ).reused
    for i in range(n):
        ledger.charge(
            dataset=DATASET, requester="sybil", cost=cost, request=req(10 + i), now=1, rules=rules
        )
    # ...but the total binds every identity together.
    with pytest.raises(PolicyDenied, match=r"total bit budget .* has 0 left") as info:
        ledger.charge(
            dataset=DATASET, requester="third", cost=cost, request=req(20), now=1, rules=rules
        )
    # Named as the pre-check names it, so the requester reads the same rule from both.
    assert info.value.rule == "bits-budget"
    assert str(info.value).startswith("rule bits-budget: ")


def test_bits_without_a_bit_budget_are_refused(ledger: SqlBudgetLedger) -> None:
    cost = PrivacyCost(bits=Decimal(1))
    for rules in (None, PolicyRules.parse({"allow": [{"id": "x"}]})):
        with pytest.raises(PolicyDenied, match="sets no bit budget"):
            ledger.charge(
                dataset=DATASET, requester="b", cost=cost, request=req(1), now=1, rules=rules
            )


def test_a_ledger_from_before_bit_budgets_gains_the_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE budget_charges (request VARCHAR(80), dataset VARCHAR(80), "
                "requester VARCHAR(80) NOT NULL, epsilon VARCHAR(40) NOT NULL, "
                "delta VARCHAR(40) NOT NULL, charged_at BIGINT NOT NULL, "
                "PRIMARY KEY (request, dataset))"
            )
        )
        conn.execute(
            sa.text("INSERT INTO budget_charges VALUES (:r, :d, 'old', '0.5', '0', 1)"),
            {"r": req(1), "d": DATASET},
        )
    engine.dispose()
    ledger = SqlBudgetLedger.open(url)
    try:
        rules = bit_rules("2", "2")
        ledger.charge(
            dataset=DATASET,
            requester="b",
            cost=PrivacyCost(bits=Decimal(2)),
            request=req(2),
            now=1,
            rules=rules,
        )
        assert ledger.spent(dataset=DATASET) == (Decimal("0.5"), Decimal(0))
    finally:
        ledger.close()
