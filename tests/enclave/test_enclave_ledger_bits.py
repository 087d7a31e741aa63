"""The bit budget of quality-score beside the epsilon budgets: charged before the run."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from sealroom.computations import default_registry
from sealroom.enclave.ledger import SqlBudgetLedger
from sealroom.errors import PolicyDenied
from sealroom.policy.privacy import PrivacyCost
from sealroom.policy.rules import PolicyRules
from tests.enclave.ledger_helpers import DATASET, req

QUALITY = default_registry().get("quality-score")


def bit_rules(per_requester: str, total: str) -> PolicyRules:
    return PolicyRules.parse(
        {"allow": [{"id": "x"}], "bits": {"per_requester": per_requester, "total": total}}
    )


@pytest.fixture
def ledger(db_url: str) -> SqlBudgetLedger:
    led = SqlBudgetLedger.open(db_url)
    yield led  # type: ignore[misc]
    led.close()


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
    with pytest.raises(PolicyDenied, match=r"total bit budget .* has 0 left"):
        ledger.charge(
            dataset=DATASET, requester="third", cost=cost, request=req(20), now=1, rules=rules
        )


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
