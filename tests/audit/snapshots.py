"""A room policy snapshot exactly as the rooms flow writes it (``draft_room``, the shape
``sealroom.statements.RoomSnapshot`` defines and docs/rooms-audit.md describes)."""

from __future__ import annotations

from typing import Any

from sealroom.computations import default_registry
from sealroom.computations.templates import RoomSettings, draft_room
from sealroom.crypto.keys import Identity

POLICY = "sha256:" + "ef" * 32
CREATED = 1_800_000_000
EXPIRES = 1_900_000_000


def snapshot(
    host: Identity,
    *,
    title: str = "Cohort overlap 2026",
    k: int = 10,
    template: str = "psi-overlap",
    dp: str = "required",
    region: str | None = "eu-west",
    policy: str = POLICY,
) -> dict[str, Any]:
    settings = RoomSettings(
        name=title,
        purpose="Size the overlap of two customer cohorts before a joint campaign.",
        template=template,
        k=k,
        dp=dp,  # type: ignore[arg-type]
        epsilon_per_run="1" if dp == "required" else None,
        epsilon_total="4" if dp == "required" else None,
        retention_seconds=7 * 86400,
        expires_at=EXPIRES,
        region=region,
    )
    _, make = draft_room(settings, host=host.party_id, registry=default_registry(), now=CREATED)
    return make(policy).to_json()


def code(snap: dict[str, Any]) -> str:
    """The code digest of the snapshot's (first) allowed query."""
    return str(snap["allowed_queries"][0]["code_digest"])
