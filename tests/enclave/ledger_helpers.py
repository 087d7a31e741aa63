"""Shared pieces for the ledger tests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sealroom.enclave.ledger import SqlBudgetLedger
from sealroom.errors import PolicyDenied
from sealroom.policy.privacy import PrivacyCost
from sealroom.policy.rules import PolicyRules

DATASET = "sha256:" + "d" * 64


def req(i: int) -> str:
    return f"sha256:{i:064x}"


def budget_rules(**dp: Any) -> PolicyRules:
    return PolicyRules.parse({"allow": [{"id": "x"}], "dp": dp})


def charge_in_process(url: str, i: int) -> bool:
    """Open the ledger afresh (as another enclave process would) and try one charge."""
    ledger = SqlBudgetLedger.open(url)
    try:
        ledger.charge(
            dataset=DATASET,
            requester="alice",
            cost=PrivacyCost(epsilon=Decimal(1)),
            request=req(i),
            now=1000,
            rules=budget_rules(epsilon_per_requester="1", epsilon_total="1"),
        )
        return True
    except PolicyDenied:
        return False
    finally:
        ledger.close()
