"""The one-page policy summary: a frozen :class:`PolicySummary` read from a room policy snapshot.

A **policy snapshot** is the room's policy as one canonical JSON object (RFC 8785, as
:func:`sealroom.statements.canonical_json` writes it); its digest, which consents name,
is ``sha256:`` + hex SHA-256 of those canonical bytes (:func:`snapshot_digest`). The
summary shows that digest, so what a participant reads and what it signs are tied.

The fields this module reads (every other field is kept in the digest but not shown;
docs/rooms-audit.md has the full description)::

    {"type": "sealroom.room-policy-snapshot", "version": 1,
     "room": str, "title": str, "purpose": str, "host": party,
     "template": {"id": str, "name": str, "code_digest": "sha256:..."},
     "inputs":  [{"party": party, "name": str, "description": str}],
     "outputs": [{"name": str, "description": str, "recipients": [party]}],
     "allowed_queries": [{"id": str, "version": str, "code_digest": "sha256:..."}],
     "visibility": [{"party": party, "sees": str}],
     "k": int, "dp": {"epsilon": decimal-str, "delta": decimal-str} | null,
     "retention_seconds": int | null, "expires_at": unix-time | null, "region": str | null,
     "parties": [{"party": party, "name": str}]}   # optional: display names
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from sealroom.crypto.keys import PARTY_ID_PREFIX, fingerprint
from sealroom.errors import StatementFormatError
from sealroom.statements import canonical_json, parse_json_strict
from sealroom.statements.fields import DIGEST_PATTERN

__all__ = [
    "MAX_SNAPSHOT_SIZE",
    "SNAPSHOT_TYPE",
    "InputLine",
    "OutputLine",
    "PolicySummary",
    "QueryLine",
    "VisibilityLine",
    "parse_snapshot",
    "snapshot_digest",
    "summary_from_snapshot",
]

SNAPSHOT_TYPE = "sealroom.room-policy-snapshot"
SNAPSHOT_VERSION = 1
MAX_SNAPSHOT_SIZE = 1 << 20
_MAX_ITEMS = 200
_MAX_TEXT = 2000

_DIGEST_RE = re.compile(DIGEST_PATTERN)


@dataclass(frozen=True, slots=True)
class InputLine:
    party: str
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class OutputLine:
    name: str
    description: str
    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QueryLine:
    id: str
    version: str
    code_digest: str


@dataclass(frozen=True, slots=True)
class VisibilityLine:
    party: str
    sees: str


@dataclass(frozen=True, slots=True)
class PolicySummary:
    """Everything the one page shows, already checked; both renderers read only this."""

    snapshot_digest: str
    room: str
    title: str
    purpose: str
    host: str
    template_id: str
    template_name: str
    template_code_digest: str
    inputs: tuple[InputLine, ...]
    outputs: tuple[OutputLine, ...]
    allowed_queries: tuple[QueryLine, ...]
    visibility: tuple[VisibilityLine, ...]
    k: int
    dp_epsilon: str | None
    dp_delta: str | None
    retention_seconds: int | None
    expires_at: int | None
    region: str | None
    names: tuple[tuple[str, str], ...] = ()

    def display(self, party: str) -> str:
        """A party as the page names it: its display name (if the snapshot gives one) and its
        fingerprint; the "Parties" section maps each fingerprint to the whole id."""
        name = dict(self.names).get(party)
        fp = fingerprint(party) if party.startswith(PARTY_ID_PREFIX) else party
        return f"{name} ({fp})" if name else f"party {fp}"

    def parties(self) -> tuple[str, ...]:
        """Every party the page names, host first, each once."""
        named = [self.host, *(i.party for i in self.inputs)]
        named += [r for o in self.outputs for r in o.recipients]
        named += [v.party for v in self.visibility]
        return tuple(dict.fromkeys(named))

    def privacy_line(self) -> str:
        k = f"every released group has at least k = {self.k} entities"
        if self.dp_epsilon is None:
            return f"{k}; no differential-privacy noise (exact releases)"
        return (
            f"{k}; differential privacy with epsilon = {self.dp_epsilon}, delta = {self.dp_delta}"
        )

    def retention_line(self) -> str:
        if self.retention_seconds is None:
            return "sealed results are kept until the parties delete them (no retention limit)"
        return f"sealed results are deleted {_duration(self.retention_seconds)} after completion"


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def snapshot_digest(snapshot: dict[str, Any]) -> str:
    """``sha256:`` + hex SHA-256 of the snapshot's canonical JSON: what consents name."""
    return "sha256:" + hashlib.sha256(canonical_json(snapshot)).hexdigest()


def parse_snapshot(data: bytes) -> dict[str, Any]:
    """A snapshot file's JSON object (strict JSON, at most :data:`MAX_SNAPSHOT_SIZE`)."""
    value = parse_json_strict(data, max_size=MAX_SNAPSHOT_SIZE, what="policy snapshot")
    if not isinstance(value, dict):
        raise StatementFormatError("policy snapshot: must be a JSON object")
    return value


def _text(d: dict[str, Any], key: str, where: str, *, empty: bool = False) -> str:
    value = d.get(key)
    if not isinstance(value, str) or len(value) > _MAX_TEXT or (not empty and not value):
        raise StatementFormatError(
            f"policy snapshot: {where}{key} must be a {'' if empty else 'non-empty '}"
            f"string of at most {_MAX_TEXT} characters"
        )
    return value


def _opt_text(d: dict[str, Any], key: str, where: str) -> str | None:
    return None if d.get(key) is None else _text(d, key, where)


def _digest(d: dict[str, Any], key: str, where: str) -> str:
    value = d.get(key)
    if not isinstance(value, str) or not _DIGEST_RE.match(value):
        raise StatementFormatError(f"policy snapshot: {where}{key} must be sha256:<64 hex>")
    return value


def _int(d: dict[str, Any], key: str, where: str, *, optional: bool, low: int = 0) -> int | None:
    value = d.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value < 2**53:
        raise StatementFormatError(f"policy snapshot: {where}{key} must be an integer >= {low}")
    return value


def _objects(d: dict[str, Any], key: str, *, required: bool = True) -> list[dict[str, Any]]:
    value = d.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        raise StatementFormatError(
            f"policy snapshot: {key} must be a list of at most {_MAX_ITEMS} objects"
        )
    if not all(isinstance(v, dict) for v in value):
        raise StatementFormatError(f"policy snapshot: every item of {key} must be an object")
    return value


def summary_from_snapshot(snapshot: dict[str, Any]) -> PolicySummary:
    """The summary of a parsed snapshot; a missing or malformed field is a
    :class:`StatementFormatError` naming it (a page is never drawn from a guess)."""
    if snapshot.get("type") != SNAPSHOT_TYPE:
        raise StatementFormatError(f"not a room policy snapshot (type {snapshot.get('type')!r})")
    if snapshot.get("version") != SNAPSHOT_VERSION:
        raise StatementFormatError(
            f"unknown policy snapshot version {snapshot.get('version')!r} "
            f"(supported: {SNAPSHOT_VERSION})"
        )
    template = snapshot.get("template")
    if not isinstance(template, dict):
        raise StatementFormatError("policy snapshot: template must be an object")
    dp = snapshot.get("dp")
    if dp is not None and not isinstance(dp, dict):
        raise StatementFormatError("policy snapshot: dp must be an object or null")
    outputs = []
    for i, o in enumerate(_objects(snapshot, "outputs")):
        recipients = o.get("recipients")
        if (
            not isinstance(recipients, list)
            or not recipients
            or len(recipients) > _MAX_ITEMS
            or not all(isinstance(r, str) and 0 < len(r) <= 200 for r in recipients)
        ):
            raise StatementFormatError(
                f"policy snapshot: outputs[{i}].recipients must be a non-empty list of parties"
            )
        outputs.append(
            OutputLine(
                name=_text(o, "name", f"outputs[{i}]."),
                description=_text(o, "description", f"outputs[{i}].", empty=True),
                recipients=tuple(recipients),
            )
        )
    k = _int(snapshot, "k", "", optional=False, low=1) or 1
    return PolicySummary(
        snapshot_digest=snapshot_digest(snapshot),
        room=_text(snapshot, "room", ""),
        title=_text(snapshot, "title", ""),
        purpose=_text(snapshot, "purpose", ""),
        host=_text(snapshot, "host", ""),
        template_id=_text(template, "id", "template."),
        template_name=_text(template, "name", "template."),
        template_code_digest=_digest(template, "code_digest", "template."),
        inputs=tuple(
            InputLine(
                party=_text(x, "party", f"inputs[{i}]."),
                name=_text(x, "name", f"inputs[{i}]."),
                description=_text(x, "description", f"inputs[{i}].", empty=True),
            )
            for i, x in enumerate(_objects(snapshot, "inputs"))
        ),
        outputs=tuple(outputs),
        allowed_queries=tuple(
            QueryLine(
                id=_text(q, "id", f"allowed_queries[{i}]."),
                version=_text(q, "version", f"allowed_queries[{i}]."),
                code_digest=_digest(q, "code_digest", f"allowed_queries[{i}]."),
            )
            for i, q in enumerate(_objects(snapshot, "allowed_queries"))
        ),
        visibility=tuple(
            VisibilityLine(
                party=_text(v, "party", f"visibility[{i}]."),
                sees=_text(v, "sees", f"visibility[{i}]."),
            )
            for i, v in enumerate(_objects(snapshot, "visibility"))
        ),
        k=k,
        dp_epsilon=None if dp is None else _text(dp, "epsilon", "dp."),
        dp_delta=None if dp is None else _text(dp, "delta", "dp."),
        retention_seconds=_int(snapshot, "retention_seconds", "", optional=True, low=1),
        expires_at=_int(snapshot, "expires_at", "", optional=True),
        region=_opt_text(snapshot, "region", ""),
        names=tuple(
            (_text(p, "party", f"parties[{i}]."), _text(p, "name", f"parties[{i}]."))
            for i, p in enumerate(_objects(snapshot, "parties", required=False))
        ),
    )
