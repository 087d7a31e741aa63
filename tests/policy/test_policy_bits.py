"""Bit budgets in policies: quality-score runs only where the seller declares one."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sealroom.client.flows import exact_rule
from sealroom.computations import default_registry
from sealroom.errors import InvalidInput
from sealroom.policy.compose import compose
from sealroom.policy.rules import PolicyRules, decide

QUALITY = default_registry().get("quality-score")
PARAMS = QUALITY.parse_params({})


def rules(**extra: Any) -> PolicyRules:
    allow = exact_rule(QUALITY, PARAMS.model_dump())
    return PolicyRules.parse({"allow": [allow], **extra})


def verdict(r: PolicyRules) -> tuple[bool, str]:
    d = decide(
        r,
        computation=QUALITY,
        request=QUALITY.request_shape(PARAMS, partners=[]),
        requester="buyer",
        cost=QUALITY.cost(PARAMS),
    )
    return d.allowed, d.reason


def test_quality_score_is_exact_and_needs_a_bit_budget() -> None:
    assert not QUALITY.request_shape(PARAMS, partners=[]).dp
    allowed, reason = verdict(rules())
    assert not allowed
    assert reason.startswith("rule bits-budget:")
    assert "no bit budget" in reason
    allowed, reason = verdict(rules(bits={"per_requester": "6", "total": "100"}))
    assert not allowed
    assert "per-requester bit budget is 6" in reason
    allowed, reason = verdict(rules(bits={"per_requester": "7", "total": "100"}))
    assert allowed, reason


def test_a_range_the_seller_did_not_pin_is_refused() -> None:
    wide = QUALITY.parse_params({"score_max": "1000"})
    d = decide(
        rules(bits={"per_requester": "70", "total": "100"}),
        computation=QUALITY,
        request=QUALITY.request_shape(wide, partners=[]),
        requester="buyer",
        cost=QUALITY.cost(wide),
    )
    assert not d.allowed
    assert d.reason.startswith("rule exact-shape-pinned:")


def test_budgets_compose_to_the_smaller_and_none_wins() -> None:
    a = rules(bits={"per_requester": "10", "total": "100"})
    b = rules(bits={"per_requester": "20", "total": "50"})
    both = compose(a, b).bits
    assert both is not None
    assert (Decimal(both.per_requester), Decimal(both.total)) == (10, 50)
    assert compose(a, rules()).bits is None


def test_per_requester_cannot_exceed_total() -> None:
    with pytest.raises(InvalidInput, match="cannot exceed total"):
        rules(bits={"per_requester": "10", "total": "5"})
