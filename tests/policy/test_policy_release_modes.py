"""How a policy lets a requester-parametrised computation release: DP, or its pinned shape.

The attacker here is a requester who controls every parameter and its own inputs: the
tests name what it tries (an exact release of a shape the owner did not pin, a partner
dataset of its own, a room that should narrow the owner's policy but widens it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealroom.crypto.keys import b64encode
from sealroom.errors import InvalidInput
from sealroom.policy.compose import compose, decide_in_room
from sealroom.policy.privacy import PrivacyClass, RequestShape
from sealroom.policy.rules import PolicyRules, decide, default_dp_mode
from tests.helpers import identity

ALICE = identity("alice").party_id
# Partners are named by content commitment root (base64 SHA-256).
PARTNER = b64encode(hashlib.sha256(b"partner dataset").digest())
ATTACKER_DATA = b64encode(hashlib.sha256(b"attacker dataset").digest())


@dataclass(frozen=True)
class Info:
    """A computation as a policy sees it."""

    id: str = "stats"
    version: str = "1.0.0"
    privacy_class: PrivacyClass = "aggregate"
    isolating: tuple[str, ...] = ("group_by",)
    selectors: bool = False


STATS = Info()
JOIN = Info(id="join-sum", isolating=("key", "value"), selectors=True)
PLAIN = Info(id="overlap", isolating=())


def rules(**fields: Any) -> PolicyRules:
    return PolicyRules.parse(fields)


def shape(*, dp: bool = False, partners: tuple[str, ...] = (), **params: Any) -> RequestShape:
    return RequestShape(dp=dp, params=params, partners=frozenset(partners))


def refusal(r: PolicyRules | None, info: Info, request: RequestShape) -> str:
    d = decide(r, computation=info, request=request, requester=ALICE)
    assert not d.allowed
    return d.reason


def allowed(r: PolicyRules | None, info: Info, request: RequestShape) -> bool:
    return decide(r, computation=info, request=request, requester=ALICE).allowed


def test_a_parametrised_computation_is_dp_only_unless_the_owner_says_otherwise() -> None:
    assert default_dp_mode(STATS) == "required"
    assert default_dp_mode(JOIN) == "required"
    assert default_dp_mode(PLAIN) == "optional"
    r = rules(allow=[{"id": "stats"}])
    assert allowed(r, STATS, shape(dp=True, group_by=["region", "sex"]))
    assert refusal(r, STATS, shape(group_by=["region"])).startswith("rule dp-required:")


def test_not_parametrised_releases_exactly_without_pins() -> None:
    assert allowed(rules(allow=[{"id": "overlap"}]), PLAIN, shape())


def test_exact_release_of_the_pinned_shape_only() -> None:
    r = rules(
        allow=[{"id": "stats", "dp": "optional", "pinned": {"params": {"group_by": ["region"]}}}]
    )
    assert allowed(r, STATS, shape(group_by=["region"]))
    # Differencing attempt: the same statistic on a finer grouping.
    why = refusal(r, STATS, shape(group_by=["region", "sex"]))
    assert why.startswith("rule exact-shape-pinned:")
    assert "'group_by'" in why
    assert '["region"]' in why
    assert '["region","sex"]' in why
    # DP stays free in optional mode.
    assert allowed(r, STATS, shape(dp=True, group_by=["region", "sex"]))


def test_an_unpinned_isolating_parameter_denies_the_exact_release() -> None:
    r = rules(allow=[{"id": "join-sum", "dp": "off", "pinned": {"params": {"key": "id"}}}])
    why = refusal(r, JOIN, shape(key="id", value="salary", partners=(PARTNER,)))
    assert why.startswith("rule exact-shape-pinned:")
    assert "'value'" in why


def test_an_exact_join_needs_a_pinned_partner() -> None:
    r = rules(
        allow=[
            {
                "id": "join-sum",
                "dp": "off",
                "pinned": {"params": {"key": "id", "value": "spend"}, "partners": [PARTNER]},
            }
        ]
    )
    assert allowed(r, JOIN, shape(key="id", value="spend", partners=(PARTNER,)))
    # The attacker brings its own id list (S, then S plus the target).
    why = refusal(r, JOIN, shape(key="id", value="spend", partners=(ATTACKER_DATA,)))
    assert why.startswith("rule exact-partners-pinned:")
    assert ATTACKER_DATA in why


def test_dp_off_refuses_a_dp_request() -> None:
    r = rules(allow=[{"id": "stats", "dp": "off", "pinned": {"params": {"group_by": []}}}])
    assert refusal(r, STATS, shape(dp=True, group_by=[])).startswith("rule dp-off:")
    assert allowed(r, STATS, shape(group_by=[]))


def test_pins_compare_as_canonical_json() -> None:
    r = rules(
        allow=[{"id": "stats", "dp": "off", "pinned": {"params": {"group_by": {"b": 1, "a": [2]}}}}]
    )
    assert allowed(r, STATS, shape(group_by={"a": [2], "b": 1}))
    assert not allowed(r, STATS, shape(group_by={"a": ["2"], "b": 1}))
    assert not allowed(r, STATS, shape(group_by=None))


def test_one_matching_rule_that_admits_is_enough() -> None:
    r = rules(
        allow=[
            {"id": "stats", "dp": "off", "pinned": {"params": {"group_by": ["region"]}}},
            {"id": "stats", "dp": "off", "pinned": {"params": {"group_by": ["year"]}}},
        ]
    )
    assert allowed(r, STATS, shape(group_by=["region"]))
    assert allowed(r, STATS, shape(group_by=["year"]))
    assert not allowed(r, STATS, shape(group_by=["region", "year"]))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"allow": [{"id": "stats", "dp": "required", "pinned": {"params": {}}}]},
            "releases nothing exactly",
        ),
        ({"auto_approve": [{"id": "stats", "dp": "optional"}]}, "belong in 'allow'"),
        ({"allow": [{"id": "stats", "dp": "sometimes"}]}, "dp"),
        ({"allow": [{"id": "stats", "pinned": {"partners": ["not-a-digest"]}}]}, "partners"),
        ({"allow": [{"id": "stats", "pinned": {"params": {"Bad Name": 1}}}]}, "params"),
    ],
)
def test_malformed_release_rules_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        PolicyRules.parse(fields)


def test_a_room_cannot_widen_an_owners_default() -> None:
    own = rules(allow=[{"id": "stats"}])  # default: DP only
    room = rules(allow=[{"id": "stats", "dp": "off", "pinned": {"params": {"group_by": []}}}])
    decision, _ = decide_in_room(
        own, room, computation=STATS, request=shape(group_by=[]), requester=ALICE
    )
    assert not decision.allowed
    assert "rule dp-required" in decision.reason


def test_a_room_narrows_an_owners_exact_release() -> None:
    own = rules(allow=[{"id": "stats", "dp": "optional", "pinned": {"params": {"group_by": []}}}])
    room = rules(allow=[{"id": "stats", "dp": "required"}])
    decision, effective = decide_in_room(
        own, room, computation=STATS, request=shape(group_by=[]), requester=ALICE
    )
    assert not decision.allowed
    assert effective is not None
    assert effective.allow[0].dp == "required"
    dp, _ = decide_in_room(
        own, room, computation=STATS, request=shape(dp=True, group_by=[]), requester=ALICE
    )
    assert dp.allowed


def test_conflicting_pins_leave_nothing_pinned() -> None:
    a = rules(allow=[{"id": "stats", "dp": "off", "pinned": {"params": {"group_by": ["a"]}}}])
    b = rules(allow=[{"id": "stats", "dp": "off", "pinned": {"params": {"group_by": ["b"]}}}])
    both = compose(a, b)
    assert both.allow[0].pinned is not None
    assert both.allow[0].pinned.params == {}
    for value in (["a"], ["b"]):
        assert not allowed(both, STATS, shape(group_by=value))


def test_incompatible_modes_drop_the_computation() -> None:
    a = rules(allow=[{"id": "stats", "dp": "required"}])
    b = rules(allow=[{"id": "stats", "dp": "off", "pinned": {"params": {"group_by": []}}}])
    assert compose(a, b).allow == ()


# --- composition never admits what either side alone refuses --------------------------------

_MODES = st.sampled_from([None, "required", "optional", "off"])
_VALUES = st.sampled_from([[], ["a"], ["b"], "x"])
_PARTNERS = st.sampled_from([PARTNER, ATTACKER_DATA])


@st.composite
def _rule_sets(draw: st.DrawFn) -> PolicyRules:
    mode = draw(_MODES)
    entry: dict[str, Any] = {"id": "join-sum"}
    if mode is not None:
        entry["dp"] = mode
    if mode != "required" and draw(st.booleans()):
        params = draw(st.dictionaries(st.sampled_from(["key", "value"]), _VALUES, max_size=2))
        partners = draw(st.lists(_PARTNERS, max_size=2, unique=True))
        entry["pinned"] = {"params": params, "partners": partners}
    return rules(allow=[entry])


@given(
    a=_rule_sets(),
    b=_rule_sets(),
    dp=st.booleans(),
    key=_VALUES,
    value=_VALUES,
    partner=_PARTNERS,
)
def test_composition_admits_only_what_both_admit(
    a: PolicyRules, b: PolicyRules, dp: bool, key: Any, value: Any, partner: str
) -> None:
    request = shape(dp=dp, key=key, value=value, partners=(partner,))
    both = compose(a, b)
    if allowed(both, JOIN, request):
        assert allowed(a, JOIN, request)
        assert allowed(b, JOIN, request)
