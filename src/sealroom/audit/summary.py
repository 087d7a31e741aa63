"""The one-page policy summary: a frozen :class:`PolicySummary` read from a room's policy snapshot.

The snapshot is the rooms' own (:class:`sealroom.statements.RoomSnapshot`, format
``sealroom.room-policy/v1``), as :func:`sealroom.statements.policy_snapshot` returns it
from a signed :class:`~sealroom.statements.Room`: one format for the room, the consent,
the summary and the auditor pack. Its digest, which consents name, is ``sha256:`` + hex
SHA-256 of its canonical JSON (RFC 8785, :func:`sealroom.statements.snapshot_digest`).
The summary is drawn only from a dict that *is* a valid snapshot, field for field (no
unknown field, no value the model would normalise), so the digest the page shows is the
digest of exactly what it renders, and what a participant reads is what it signs.
docs/rooms-audit.md lists the fields and how each is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sealroom.crypto.keys import PARTY_ID_PREFIX, fingerprint
from sealroom.errors import StatementFormatError
from sealroom.statements import (
    Room,
    RoomSnapshot,
    canonical_json,
    parse_json_strict,
    policy_snapshot,
    snapshot_digest,
)

__all__ = [
    "MAX_SNAPSHOT_SIZE",
    "SNAPSHOT_FORMAT",
    "PolicySummary",
    "QueryLine",
    "parse_snapshot",
    "room_summary",
    "snapshot_digest",
    "summary_from_snapshot",
]

SNAPSHOT_FORMAT = "sealroom.room-policy/v1"
MAX_SNAPSHOT_SIZE = 1 << 20
_RECIPIENTS = {
    "host-and-input-owners": "the host (who asks for each run) and every member whose data "
    "is an input of that run; no one else",
}


@dataclass(frozen=True, slots=True)
class QueryLine:
    id: str
    version: str
    code_digest: str


@dataclass(frozen=True, slots=True)
class PolicySummary:
    """Everything the one page shows, already checked; both renderers read only this."""

    snapshot_digest: str
    room: str | None  # the room's id (its Room statement's digest), when known
    title: str
    purpose: str
    host: str
    template_id: str
    template_title: str
    k_floor: int
    risky: bool
    risk_reasons: tuple[str, ...]
    allowed_queries: tuple[QueryLine, ...]
    recipients: str
    k: int
    dp_mode: str
    dp_epsilon_per_run: str | None
    dp_epsilon_total: str | None
    dp_delta_total: str
    retention_seconds: int
    expires_at: int
    created_at: int
    region: str | None
    max_parties: int
    approval: str
    approvers_required: int
    policy: str
    names: tuple[tuple[str, str], ...] = ()

    def display(self, party: str) -> str:
        """A party as the page names it: its display name (if the caller gave one) and its
        fingerprint; the "Parties" section maps each fingerprint to the whole id."""
        name = dict(self.names).get(party)
        fp = fingerprint(party) if party.startswith(PARTY_ID_PREFIX) else party
        return f"{name} ({fp})" if name else f"party {fp}"

    def parties(self) -> tuple[str, ...]:
        """Every party the page names, host first, each once."""
        return tuple(dict.fromkeys([self.host, *(p for p, _ in self.names)]))

    def privacy_line(self) -> str:
        k = f"every released group has at least k = {self.k} entities"
        floor = (
            f" (below the template's floor of {self.k_floor})"
            if self.k < self.k_floor
            else f" (template floor {self.k_floor})"
        )
        if self.dp_mode == "exact":
            return f"{k}{floor}; no differential-privacy noise required (exact releases allowed)"
        return (
            f"{k}{floor}; differential privacy required: epsilon = {self.dp_epsilon_per_run} "
            f"per run, {self.dp_epsilon_total} in total per member dataset, "
            f"delta = {self.dp_delta_total} in total"
        )

    def approval_line(self) -> str:
        how = (
            "each run is approved by hand"
            if self.approval == "manual"
            else "members' clients approve runs the room's policy admits without asking"
        )
        people = (
            "one approver"
            if self.approvers_required == 1
            else f"{self.approvers_required} distinct approvers"
        )
        return f"{how}; every data party needs {people} per run"

    def retention_line(self) -> str:
        return f"sealed results are deleted {_duration(self.retention_seconds)} after completion"


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def parse_snapshot(data: bytes) -> dict[str, Any]:
    """A snapshot file's JSON object (strict JSON, at most :data:`MAX_SNAPSHOT_SIZE`)."""
    value = parse_json_strict(data, max_size=MAX_SNAPSHOT_SIZE, what="policy snapshot")
    if not isinstance(value, dict):
        raise StatementFormatError("policy snapshot: must be a JSON object")
    return value


def _validated(snapshot: Mapping[str, Any]) -> RoomSnapshot:
    """The snapshot as the rooms' model; refused unless it round-trips to the same dict."""
    if snapshot.get("format") != SNAPSHOT_FORMAT:
        raise StatementFormatError(
            f"not a room policy snapshot (format {snapshot.get('format')!r}; "
            f"supported: {SNAPSHOT_FORMAT})"
        )
    try:
        model = RoomSnapshot.model_validate_json(canonical_json(dict(snapshot)))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "snapshot"
        raise StatementFormatError(f"policy snapshot: {where}: {first['msg']}") from None
    if model.to_json() != dict(snapshot):
        raise StatementFormatError(
            "policy snapshot: not in the form the room model writes (a value it would change)"
        )
    return model


def summary_from_snapshot(
    snapshot: Mapping[str, Any],
    *,
    room: str | None = None,
    names: Mapping[str, str] | None = None,
) -> PolicySummary:
    """The summary of a parsed snapshot; a missing or malformed field is a
    :class:`StatementFormatError` naming it (a page is never drawn from a guess).

    ``room``: the room id to show; ``names``: display names of parties (not part of the
    snapshot, so not of the digest: the page names each party by fingerprint too)."""
    s = _validated(snapshot)
    return PolicySummary(
        snapshot_digest=snapshot_digest(dict(snapshot)),
        room=room,
        title=s.name,
        purpose=s.purpose,
        host=s.host,
        template_id=s.template.id,
        template_title=s.template.title,
        k_floor=s.template.k_floor,
        risky=s.template.risky,
        risk_reasons=s.template.risk_reasons,
        allowed_queries=tuple(
            QueryLine(id=q.id, version=q.version, code_digest=q.code_digest)
            for q in s.allowed_queries
        ),
        recipients=_RECIPIENTS[s.recipients],
        k=s.k,
        dp_mode=s.dp.mode,
        dp_epsilon_per_run=s.dp.epsilon_per_run,
        dp_epsilon_total=s.dp.epsilon_total,
        dp_delta_total=s.dp.delta_total,
        retention_seconds=s.retention_seconds,
        expires_at=s.expires_at,
        created_at=s.created_at,
        region=s.region,
        max_parties=s.max_parties,
        approval=s.approval,
        approvers_required=s.approvers_required,
        policy=s.policy,
        names=tuple(sorted((names or {}).items())),
    )


def room_summary(
    room: Room, *, room_id: str | None = None, names: Mapping[str, str] | None = None
) -> PolicySummary:
    """The summary of a signed room's snapshot (:func:`policy_snapshot`, the seam consents
    and packs share); its digest is the one the host signed and members consent to."""
    data, digest = policy_snapshot(room)
    summary = summary_from_snapshot(data, room=room_id, names=names)
    if summary.snapshot_digest != digest:  # pragma: no cover - policy_snapshot checks it
        raise StatementFormatError("the room's snapshot digest does not match its snapshot")
    return summary
