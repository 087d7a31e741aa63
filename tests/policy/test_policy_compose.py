"""Composition: strictest wins on every field, and composing nothing denies."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from pydantic import BaseModel

from sealroom.computations import Computation
from sealroom.errors import PolicyDenied
from sealroom.policy import decide
from sealroom.policy.compose import compose
from sealroom.policy.rules import ComputationRule, PolicyRules
from tests.helpers import exact_request, identity

ALICE = identity("alice").party_id
BOB = identity("bob").party_id


def rules(**fields: Any) -> PolicyRules:
    return PolicyRules.parse(fields)


class _P(BaseModel):
    pass


def comp(version: str) -> Computation:
    return Computation(
        id="stats",
        version=version,
        summary="t",
        privacy_class="aggregate",
        release="requester",
        input_names=("a",),
        params=_P,
        output=_P,
        run_fn=lambda *a: _P(),
        modules=(sys.modules[__name__],),
    )


def test_compose_of_nothing_denies() -> None:
    empty = compose()
    assert empty.allow == ()
    assert not decide(
        empty, request=exact_request(), computation=comp("1.0.0"), requester=ALICE
    ).allowed


def test_strictest_wins() -> None:
    a = rules(
        allow=[{"id": "stats", "min_version": "1.0.0"}, {"id": "other"}],
        auto_approve=[{"id": "stats"}],
        requesters=[ALICE, BOB],
        k=5,
        entity_column="person",
        dp={
            "epsilon_per_requester": "1",
            "epsilon_total": "10",
            "delta_per_requester": "0.001",
            "delta_total": "0.01",
        },
        max_queries={"count": 10, "period_seconds": 60},
        never_output=["ssn"],
        join_only=["email"],
        max_output_rows=100,
        expires_at=2000,
        sql={"aggregate_columns": ["age", "income"], "identity_columns": ["person"]},
    )
    b = rules(
        allow=[{"id": "stats", "below_version": "2.0.0"}],
        requesters=[BOB],
        k=20,
        dp={"epsilon_per_requester": "2", "epsilon_total": "5"},
        max_queries={"count": 50, "period_seconds": 3600},
        never_output=["name"],
        max_output_rows=500,
        expires_at=1500,
        sql={"aggregate_columns": ["income"], "identity_columns": ["id"]},
    )
    c = compose(a, b)
    assert c.allow == (ComputationRule(id="stats", min_version="1.0.0", below_version="2.0.0"),)
    assert c.auto_approve == ()
    assert c.requesters == (BOB,)
    assert c.k == 20
    assert c.entity_column == "person"
    assert c.dp is not None
    assert (c.dp.epsilon_per_requester, c.dp.epsilon_total) == ("1", "5")
    assert (c.dp.delta_per_requester, c.dp.delta_total) == ("0", "0")
    assert c.max_queries is not None
    assert (c.max_queries.count, c.max_queries.period_seconds) == (10, 3600)
    assert c.never_output == ("name", "ssn")
    assert c.join_only == ("email",)
    assert c.max_output_rows == 100
    assert c.expires_at == 1500
    assert c.sql is not None
    assert c.sql.aggregate_columns == ("income",)
    assert set(c.sql.identity_columns) == {"id", "person"}
    assert decide(c, request=exact_request(), computation=comp("1.5.0"), requester=BOB).allowed
    assert not decide(c, request=exact_request(), computation=comp("2.0.0"), requester=BOB).allowed
    assert not decide(
        c, request=exact_request(), computation=comp("1.5.0"), requester=ALICE
    ).allowed
    assert not decide(
        c, request=exact_request(), computation=comp("1.5.0"), requester=BOB, now=1500
    ).allowed
    # Composition is symmetric in its outcome on these fields.
    assert compose(b, a).k == c.k
    assert compose(b, a).expires_at == c.expires_at


def test_none_means_none_allowed_for_dp_and_sql_but_no_limit_for_caps() -> None:
    a = rules(
        allow=[{"id": "stats"}],
        dp={"epsilon_per_requester": "1", "epsilon_total": "1"},
        sql={},
        max_output_rows=10,
    )
    b = rules(allow=[{"id": "stats"}])
    c = compose(a, b)
    assert c.dp is None
    assert c.sql is None
    assert c.max_output_rows == 10
    assert c.expires_at is None


def test_disjoint_allows_deny_and_conflicting_entities_refused() -> None:
    a = rules(allow=[{"id": "stats", "below_version": "1.0.0"}])
    b = rules(allow=[{"id": "stats", "min_version": "1.0.0"}])
    assert compose(a, b).allow == ()
    with pytest.raises(PolicyDenied, match="different entity columns"):
        compose(rules(entity_column="a"), rules(entity_column="b"))


def test_expiry_in_decide_reports_reason() -> None:
    r = rules(allow=[{"id": "stats"}], expires_at=100)
    ok = decide(r, request=exact_request(), computation=comp("1.0.0"), requester=ALICE, now=99)
    assert ok.reasons[0] == "the policy is in force until 100"
    late = decide(r, request=exact_request(), computation=comp("1.0.0"), requester=ALICE, now=100)
    assert late.failed == ("rule expires-at: the policy expired at 100 (now 100)",)
