"""dstack event logs and RTMR3 replay with digests recomputed from the payloads.

RTMR3 is where dstack measures the application: its app id, compose hash,
instance id, key provider and so on, as "runtime events". The guest agent's
event log carries each event's name and payload, and a ``digest`` field that
is empty for runtime events. The digest must be *recomputed* from the payload
— trusting a ``digest`` field (as dstack-sdk 0.5.4's ``replay_rtmr`` does)
would let a forged payload ride on a genuine digest, and with empty digests it
does not even reproduce RTMR3.

Digest of a runtime event (dstack ``cc-eventlog``, ``RuntimeEvent::digest``,
event log version 1)::

    SHA-384(le32(0x08000001) || ":" || event_name || ":" || payload)

and RTMR3 replays as ``mr = SHA-384(mr || digest)`` from 48 zero bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sealroom.errors import AttestationInvalid

__all__ = [
    "RTMR_SIZE",
    "RUNTIME_EVENT_TYPE",
    "TdxEvent",
    "check_rtmr3",
    "parse_event_log",
    "replay_rtmr3",
    "runtime_event_digest",
    "runtime_event_payload",
]

RUNTIME_EVENT_TYPE = 0x08000001
RTMR_SIZE = 48
_RTMR3 = 3
_SYSTEM_READY = "system-ready"
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_U32_MAX = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class TdxEvent:
    """One entry of a dstack guest agent's event log, decoded but not yet trusted."""

    imr: int
    event_type: int
    # As carried in the log; never trusted for runtime events.
    digest: bytes
    event: str
    payload: bytes

    @property
    def is_runtime_event(self) -> bool:
        return self.event_type == RUNTIME_EVENT_TYPE


def _hex_field(value: Any, *, what: str) -> bytes:
    if not isinstance(value, str) or _HEX.fullmatch(value) is None:
        raise AttestationInvalid(f"event log: {what} must be a hex string")
    return bytes.fromhex(value)


def _int_field(value: Any, *, what: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise AttestationInvalid(f"event log: {what} must be an integer in 0..{maximum}")
    return value


def parse_event_log(text: str) -> tuple[TdxEvent, ...]:
    """Decode a guest agent event log (JSON list); raise :class:`AttestationInvalid` if malformed."""
    try:
        data: Any = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise AttestationInvalid("event log: not valid JSON") from exc
    if not isinstance(data, list):
        raise AttestationInvalid("event log: expected a JSON list of events")
    events = []
    for index, entry in enumerate(data):
        what = f"event {index}"
        if not isinstance(entry, dict):
            raise AttestationInvalid(f"event log: {what} is not an object")
        missing = {"imr", "event_type", "digest", "event", "event_payload"} - set(entry)
        if missing:
            raise AttestationInvalid(f"event log: {what} lacks {sorted(missing)}")
        # dstack writes "version" only for event log formats after v1, whose
        # digests are computed differently; refuse rather than guess.
        if "version" in entry and entry["version"] != 1:
            raise AttestationInvalid(
                f"event log: {what} has unsupported version {entry['version']!r}"
            )
        if not isinstance(entry["event"], str):
            raise AttestationInvalid(f"event log: {what} name must be a string")
        events.append(
            TdxEvent(
                imr=_int_field(entry["imr"], what=f"{what} imr", maximum=3),
                event_type=_int_field(
                    entry["event_type"], what=f"{what} event_type", maximum=_U32_MAX
                ),
                digest=_hex_field(entry["digest"], what=f"{what} digest"),
                event=entry["event"],
                payload=_hex_field(entry["event_payload"], what=f"{what} event_payload"),
            )
        )
    return tuple(events)


def runtime_event_digest(event: str, payload: bytes) -> bytes:
    """SHA-384 digest of a dstack runtime event (event log version 1)."""
    return hashlib.sha384(
        struct.pack("<I", RUNTIME_EVENT_TYPE) + b":" + event.encode("utf-8") + b":" + payload
    ).digest()


def replay_rtmr3(events: Sequence[TdxEvent]) -> bytes:
    """Replay RTMR3 from the IMR 3 events, recomputing every digest from its payload.

    Every IMR 3 event must be a runtime event: any other kind would be extended
    by a digest we cannot recompute, so its payload would mean nothing.
    """
    mr = bytes(RTMR_SIZE)
    for index, event in enumerate(events):
        if event.imr != _RTMR3:
            continue
        if not event.is_runtime_event:
            raise AttestationInvalid(
                f"event log: event {index} in RTMR3 has type {event.event_type:#x}, "
                "not a dstack runtime event; its digest cannot be recomputed"
            )
        digest = runtime_event_digest(event.event, event.payload)
        if event.digest and not hmac.compare_digest(event.digest, digest):
            raise AttestationInvalid(
                f"event log: event {index} ({event.event!r}) carries a digest "
                "that does not match its payload"
            )
        mr = hashlib.sha384(mr + digest).digest()
    return mr


def check_rtmr3(events: Sequence[TdxEvent], quoted_rtmr3: bytes) -> None:
    """Raise unless replaying the event log reproduces the RTMR3 the quote signs."""
    replayed = replay_rtmr3(events)
    if len(quoted_rtmr3) != RTMR_SIZE or not hmac.compare_digest(replayed, quoted_rtmr3):
        raise AttestationInvalid(
            f"RTMR3 replay mismatch: the event log replays to {replayed.hex()}, "
            f"the quote has {quoted_rtmr3.hex()}"
        )


def runtime_event_payload(events: Sequence[TdxEvent], name: str) -> bytes | None:
    """Payload of the first RTMR3 runtime event called ``name`` before ``system-ready``.

    Same rule as dstack's own verifier: events after ``system-ready`` are
    emitted by the application, which could imitate the system's names.
    Only meaningful after :func:`check_rtmr3` has passed on the same events.
    """
    for event in events:
        if event.imr != _RTMR3 or not event.is_runtime_event:
            continue
        if event.event == _SYSTEM_READY:
            return None
        if event.event == name:
            return event.payload
    return None
