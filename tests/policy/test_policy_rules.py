from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from sealroom.computations import Computation, PrivacyClass, PrivacyContext
from sealroom.errors import InvalidInput
from sealroom.policy import Decision, PolicyRules, decide
from tests.helpers import exact_request, identity

ALICE = identity("alice").party_id
BOB = identity("bob").party_id


class _Params(BaseModel):
    pass


def _never_run(inputs: Any, params: BaseModel, privacy: PrivacyContext) -> BaseModel:
    raise AssertionError("policy decisions never run the computation")


def computation(
    cid: str = "topic-overlap", version: str = "1.0.0", privacy_class: PrivacyClass = "aggregate"
) -> Computation:
    return Computation(
        id=cid,
        version=version,
        summary="test",
        privacy_class=privacy_class,
        release="all-parties",
        input_names=("a", "b"),
        params=_Params,
        output=_Params,
        run_fn=_never_run,
        modules=(sys.modules[__name__],),
    )


TOPIC = computation()


def rules(**fields: Any) -> PolicyRules:
    return PolicyRules.parse(fields)


def test_no_policy_waits_for_the_owner() -> None:
    assert decide(None, request=exact_request(), computation=TOPIC, requester=ALICE) == Decision(
        True, False, ("the dataset has no policy; the owner decides by hand",)
    )


def test_empty_policy_denies_everything() -> None:
    assert decide(rules(), request=exact_request(), computation=TOPIC, requester=ALICE) == Decision(
        False,
        False,
        (
            "the policy admits any requester",
            "rule allow: the policy does not allow topic-overlap 1.0.0",
        ),
        ("rule allow: the policy does not allow topic-overlap 1.0.0",),
    )


def test_auto_approve_alone_does_not_allow() -> None:
    d = decide(
        rules(auto_approve=[{"id": "topic-overlap"}]),
        request=exact_request(),
        computation=TOPIC,
        requester=ALICE,
    )
    assert d == Decision(
        False,
        False,
        (
            "the policy admits any requester",
            "rule allow: the policy does not allow topic-overlap 1.0.0",
        ),
        ("rule allow: the policy does not allow topic-overlap 1.0.0",),
    )
    assert d.reason == "rule allow: the policy does not allow topic-overlap 1.0.0"


def test_allowed_without_auto_approval() -> None:
    d = decide(
        rules(allow=[{"id": "topic-overlap"}]),
        request=exact_request(),
        computation=TOPIC,
        requester=ALICE,
    )
    assert d == Decision(
        True,
        False,
        (
            "the policy admits any requester",
            "the policy allows topic-overlap 1.0.0",
            "not listed for automatic approval; the owner decides by hand",
        ),
    )
    assert d.reason == "; ".join(d.reasons)


def test_allowed_and_approved_automatically() -> None:
    r = rules(allow=[{"id": "topic-overlap"}], auto_approve=[{"id": "topic-overlap"}], k=7)
    assert decide(r, request=exact_request(), computation=TOPIC, requester=ALICE) == Decision(
        True,
        True,
        (
            "the policy admits any requester",
            "the policy allows topic-overlap 1.0.0",
            "the policy approves topic-overlap 1.0.0 automatically (k=7)",
        ),
    )


def test_content_is_never_automatic() -> None:
    snippets = computation("snippets", privacy_class="content")
    r = rules(allow=[{"id": "snippets"}], auto_approve=[{"id": "snippets"}])
    assert decide(r, request=exact_request(), computation=snippets, requester=ALICE) == Decision(
        True,
        False,
        (
            "the policy admits any requester",
            "the policy allows snippets 1.0.0",
            "reveals record content, so never approved automatically",
        ),
    )


def test_model_class_may_be_automatic() -> None:
    model = computation("tiny-model", privacy_class="model")
    r = rules(allow=[{"id": "tiny-model"}], auto_approve=[{"id": "tiny-model"}])
    assert decide(r, request=exact_request(), computation=model, requester=ALICE).automatic


def test_requester_allowlist() -> None:
    r = rules(
        allow=[{"id": "topic-overlap"}], auto_approve=[{"id": "topic-overlap"}], requesters=[ALICE]
    )
    assert decide(r, request=exact_request(), computation=TOPIC, requester=ALICE).automatic
    denied = f"rule requesters: requester {BOB} is not on the policy's allowlist"
    assert decide(r, request=exact_request(), computation=TOPIC, requester=BOB) == Decision(
        False, False, (denied, "the policy allows topic-overlap 1.0.0"), (denied,)
    )


def test_empty_requester_allowlist_denies_everyone() -> None:
    r = rules(allow=[{"id": "topic-overlap"}], requesters=[])
    assert not decide(r, request=exact_request(), computation=TOPIC, requester=ALICE).allowed


@pytest.mark.parametrize(
    ("version", "allowed"),
    [
        ("1.1.9", False),
        ("1.2.0", True),  # min_version is inclusive
        ("1.2.1", True),
        ("1.10.0", True),  # numeric, not lexicographic
        ("1.99.99", True),
        ("2.0.0", False),  # below_version is exclusive
        ("10.0.0", False),
    ],
)
def test_version_range(version: str, allowed: bool) -> None:
    r = rules(allow=[{"id": "topic-overlap", "min_version": "1.2.0", "below_version": "2.0.0"}])
    d = decide(
        r, request=exact_request(), computation=computation(version=version), requester=ALICE
    )
    assert d.allowed is allowed
    if not allowed:
        assert d.failed == (f"rule allow: the policy does not allow topic-overlap {version}",)


def test_auto_approve_range_narrower_than_allow() -> None:
    r = rules(
        allow=[{"id": "topic-overlap"}],
        auto_approve=[{"id": "topic-overlap", "below_version": "2.0.0"}],
    )
    assert decide(
        r, request=exact_request(), computation=computation(version="1.5.0"), requester=ALICE
    ).automatic
    later = decide(
        r, request=exact_request(), computation=computation(version="2.0.0"), requester=ALICE
    )
    assert (later.allowed, later.automatic) == (True, False)


def test_other_computation_ids_do_not_match() -> None:
    r = rules(allow=[{"id": "gap-analysis"}], auto_approve=[{"id": "gap-analysis"}])
    assert not decide(r, request=exact_request(), computation=TOPIC, requester=ALICE).allowed


def test_defaults() -> None:
    r = rules()
    assert (r.allow, r.auto_approve, r.requesters, r.k) == ((), (), "any", 5)
    assert rules(allow=[{"id": "x"}]).allow[0].min_version == "0.0.0"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"colour": "blue"}, "policy rules colour: Extra inputs are not permitted"),
        (
            {"allow": [{"id": "x", "extra": 1}]},
            "policy rules allow.0.extra: Extra inputs are not permitted",
        ),
        (
            {"allow": [{"id": "x", "min_version": "1.0"}]},
            "policy rules allow.0.min_version: String should match pattern",
        ),
        (
            {"allow": [{"id": "x", "below_version": "v2"}]},
            "policy rules allow.0.below_version: String should match pattern",
        ),
        (
            {"allow": [{"id": "x", "min_version": "1.2.0", "below_version": "1.2.0"}]},
            "policy rules allow.0: Value error, below_version must be greater than min_version",
        ),
        (
            {"auto_approve": [{"id": "x", "min_version": "2.0.0", "below_version": "1.0.0"}]},
            "policy rules auto_approve.0: Value error, below_version must be greater",
        ),
        ({"k": 0}, "policy rules k: Input should be greater than or equal to 1"),
        ({"k": -3}, "policy rules k: Input should be greater than or equal to 1"),
        ({"k": "3"}, "policy rules k: Input should be a valid integer"),
        ({"k": True}, "policy rules k: Input should be a valid integer"),
        ({"k": 2.0}, "policy rules: float at $.k"),
        ({"allow": {"id": "x"}}, "policy rules allow: Input should be a valid array"),
        ({"allow": [{"id": "Not An Id"}]}, "policy rules allow.0.id: String should match pattern"),
        ({"requesters": "all"}, "policy rules requesters"),
        ({"requesters": ["not-a-party"]}, "policy rules requesters"),
    ],
)
def test_invalid_rules(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        PolicyRules.parse(raw)
    assert str(info.value.detail).startswith(message)


def test_rules_parse_from_json_arrays() -> None:
    # Rules arrive inside a JSON payload, so lists (not tuples) must parse.
    r = PolicyRules.parse({"allow": [{"id": "x"}], "requesters": [ALICE]})
    assert r.requesters == (ALICE,)


_ids = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
_versions = st.tuples(*(st.integers(0, 9999),) * 3).map(lambda t: ".".join(map(str, t)))
_rules = st.fixed_dictionaries(
    {"id": _ids},
    optional={"min_version": st.just("0.0.0"), "below_version": st.just("9999.0.0")},
)


@settings(max_examples=150, deadline=None)
@given(
    cid=_ids,
    version=_versions,
    privacy_class=st.sampled_from(["aggregate", "model", "content"]),
    auto=st.lists(_rules, max_size=4),
    requesters=st.one_of(st.just("any"), st.just([ALICE, BOB])),
    requester=st.sampled_from([ALICE, BOB, identity("mallory").party_id]),
    k=st.integers(1, 1000),
)
def test_empty_allow_list_denies_everything(
    cid: str,
    version: str,
    privacy_class: PrivacyClass,
    auto: list[dict[str, str]],
    requesters: Any,
    requester: str,
    k: int,
) -> None:
    r = rules(allow=[], auto_approve=auto, requesters=requesters, k=k)
    d = decide(
        r,
        request=exact_request(),
        computation=computation(cid, version, privacy_class),
        requester=requester,
    )
    assert not d.allowed
    assert not d.automatic
    assert f"rule allow: the policy does not allow {cid} {version}" in d.failed
