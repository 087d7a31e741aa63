"""Room policies composed with a dataset's (decide_in_room) and retention composition."""

from __future__ import annotations

import sys

import pytest
from pydantic import BaseModel, ConfigDict

from sealroom.computations import Computation
from sealroom.errors import InvalidInput
from sealroom.policy.compose import compose, decide_in_room
from sealroom.policy.rules import PolicyRules
from tests.helpers import exact_request


class _P(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


COMP = Computation(
    id="row-count",
    version="1.0.0",
    summary="test",
    privacy_class="aggregate",
    release="requester",
    input_names=("a",),
    params=_P,
    output=_P,
    run_fn=lambda inputs, params, privacy: _P(),
    modules=(sys.modules[__name__],),
)
OWN = PolicyRules.parse({"allow": [{"id": "row-count"}], "auto_approve": [{"id": "row-count"}]})


def test_policy_retention_composes_to_the_smallest() -> None:
    a = PolicyRules.parse({"retention_seconds": 600})
    b = PolicyRules.parse({"retention_seconds": 60})
    assert compose(a, b).retention_seconds == 60
    assert compose(b, PolicyRules()).retention_seconds == 60
    assert compose(PolicyRules(), PolicyRules()).retention_seconds is None
    with pytest.raises(InvalidInput):
        PolicyRules.parse({"retention_seconds": 0})


def test_policy_decide_in_room_without_a_room_is_decide() -> None:
    decision, effective = decide_in_room(
        OWN, None, request=exact_request(), computation=COMP, requester="x", now=1
    )
    assert decision.allowed
    assert decision.automatic
    assert effective is OWN


def test_policy_room_can_only_restrict() -> None:
    narrow = PolicyRules.parse({"allow": [{"id": "other"}]})
    decision, _ = decide_in_room(
        OWN, narrow, request=exact_request(), computation=COMP, requester="x", now=1
    )
    assert not decision.allowed
    assert decision.failed == (
        "with the room policy: rule allow: the policy does not allow row-count 1.0.0",
    )
    # Allowed but not automatic: the room does not list it for automatic approval.
    manual = PolicyRules.parse({"allow": [{"id": "row-count"}], "k": 30})
    decision, effective = decide_in_room(
        OWN, manual, request=exact_request(), computation=COMP, requester="x", now=1
    )
    assert decision.allowed
    assert not decision.automatic
    assert effective is not None
    assert effective.k == 30
    # A room cannot open a dataset whose own policy refuses.
    closed = PolicyRules.parse({"allow": []})
    decision, _ = decide_in_room(
        closed, OWN, request=exact_request(), computation=COMP, requester="x", now=1
    )
    assert not decision.allowed
    assert decision.failed[0] == "rule allow: the policy does not allow row-count 1.0.0"
    # A dataset without a policy: the room may deny, never approve automatically.
    decision, _ = decide_in_room(
        None, OWN, request=exact_request(), computation=COMP, requester="x", now=1
    )
    assert decision.allowed
    assert not decision.automatic
    decision, _ = decide_in_room(
        None, narrow, request=exact_request(), computation=COMP, requester="x", now=1
    )
    assert not decision.allowed


def test_policy_room_with_another_entity_column_denies() -> None:
    own = PolicyRules.parse({**OWN.model_dump(mode="json"), "entity_column": "person"})
    room = PolicyRules.parse({**OWN.model_dump(mode="json"), "entity_column": "household"})
    decision, _ = decide_in_room(
        own, room, request=exact_request(), computation=COMP, requester="x", now=1
    )
    assert not decision.allowed
    assert "different entity columns" in decision.reason
