"""Room statements, templates and the room's policy rules, without services."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import rfc8785

from sealroom.computations import default_registry
from sealroom.computations.templates import TEMPLATES, RoomSettings, draft_room, risk_reasons
from sealroom.errors import (
    InvalidInput,
    NotFound,
    PolicyDenied,
    SignatureInvalid,
    StatementFormatError,
)
from sealroom.policy.compose import compose
from sealroom.policy.rules import PolicyRules
from sealroom.statements import (
    Policy,
    Room,
    RoomConsent,
    policy_snapshot,
    sign_statement,
    snapshot_digest,
)
from tests.helpers import identity

NOW = 1_900_000_000
HOST = identity("room-host")


def _room(**settings: Any) -> tuple[Room, dict[str, Any]]:
    options: dict[str, Any] = {
        "name": "r",
        "purpose": "p",
        "template": "psi-overlap",
        "k": 10,
        "expires_at": NOW + 600,
    }
    options.update(settings)
    rules, make = draft_room(
        RoomSettings(**options), host=HOST.party_id, registry=default_registry(), now=NOW
    )
    policy = sign_statement(
        Policy(owner=HOST.party_id, name="room", rules=rules, created_at=NOW), HOST
    )
    snap = make(policy.digest)
    room = Room(
        host=HOST.party_id,
        snapshot=snap,
        snapshot_digest=snap.digest(),
        nonce="AAAAAAAAAAAAAAAAAAAAAA==",
        created_at=NOW,
    )
    return room, rules


def test_snapshot_digest_is_sha256_of_the_jcs_form() -> None:
    room, _ = _room()
    data, digest = policy_snapshot(room)
    assert digest == "sha256:" + hashlib.sha256(rfc8785.dumps(data)).hexdigest()
    assert snapshot_digest(data) == room.snapshot_digest == digest
    assert data["allowed_queries"][0]["id"] == "intersection-overlap"


def test_a_room_with_another_snapshot_digest_is_refused() -> None:
    room, _ = _room()
    with pytest.raises(StatementFormatError, match="snapshot_digest"):
        Room.build(**{**room.model_dump(), "snapshot_digest": "sha256:" + "0" * 64})


def test_templates_name_their_risks() -> None:
    registry = default_registry()
    by_id = {t.id: t for t in TEMPLATES}
    assert risk_reasons(by_id["psi-overlap"], registry, k=10, dp="required") == ()
    assert "exact" in risk_reasons(by_id["psi-overlap"], registry, k=10, dp="exact")[0]
    assert any(
        "floor" in r for r in risk_reasons(by_id["binary-lift"], registry, k=10, dp="required")
    )
    assert any(
        "model" in r for r in risk_reasons(by_id["glm-training"], registry, k=99, dp="required")
    )
    room, rules = _room(template="glm-training", k=60)
    assert room.snapshot.template.risky
    assert room.snapshot.approvers_required == 2
    assert "auto_approve" not in rules


def test_room_rules_enforce_the_snapshot() -> None:
    room, raw = _room(region="eu-west")
    rules = PolicyRules.parse(raw)
    assert rules.consent_required
    assert rules.region == "eu-west"
    assert rules.requesters == (HOST.party_id,)
    assert [r.dp for r in rules.allow] == ["required"]
    assert rules.expires_at == room.snapshot.expires_at


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"k": 1}, "k must be"),
        ({"expires_at": NOW}, "future"),
        ({"max_parties": 51}, "max_parties"),
        ({"epsilon_per_run": "5", "epsilon_total": "1"}, "cannot exceed"),
        ({"epsilon_total": "-1"}, "positive"),
    ],
)
def test_bad_room_settings_are_named(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        _room(**settings)


def test_unknown_template() -> None:
    with pytest.raises(NotFound, match="psi-overlap"):
        _room(template="nope")


def test_regions_compose_strictly() -> None:
    eu = PolicyRules.parse({"allow": [], "region": "eu-west"})
    us = PolicyRules.parse({"allow": [], "region": "us-east"})
    assert compose(eu, PolicyRules()).region == "eu-west"
    with pytest.raises(PolicyDenied, match="region"):
        compose(eu, us)
    assert compose(PolicyRules(consent_required=True), PolicyRules()).consent_required


def test_consent_is_signed_by_its_member() -> None:
    room, _ = _room()
    member = identity("room-member")
    consent = RoomConsent(
        room="sha256:" + "1" * 64,
        party=member.party_id,
        snapshot=room.snapshot_digest,
        decision="consent",
        reason="",
        created_at=NOW,
    )
    with pytest.raises(SignatureInvalid):
        sign_statement(consent, HOST)
    assert sign_statement(consent, member).envelope.open(RoomConsent).statement == consent
