from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from typing import TYPE_CHECKING

import dcap_qvl
import pytest
from dstack_sdk.dstack_client import GetQuoteResponse
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.attestation.rtmr import (
    RUNTIME_EVENT_TYPE,
    TdxEvent,
    check_rtmr3,
    parse_event_log,
    replay_rtmr3,
    runtime_event_digest,
    runtime_event_payload,
)
from sealroom.errors import AttestationInvalid

if TYPE_CHECKING:
    from tests.attestation.conftest import DstackRecording


def quoted_rtmr3(recording: DstackRecording) -> bytes:
    rtmr3: bytes = dcap_qvl.parse_quote(recording.quote).report.rt_mr3
    return rtmr3


def runtime(name: str, payload: bytes = b"", digest: bytes = b"") -> TdxEvent:
    return TdxEvent(
        imr=3, event_type=RUNTIME_EVENT_TYPE, digest=digest, event=name, payload=payload
    )


def test_digest_formula() -> None:
    expected = hashlib.sha384(
        (0x08000001).to_bytes(4, "little") + b":app-id:" + bytes.fromhex("deadbeef")
    ).digest()
    assert runtime_event_digest("app-id", bytes.fromhex("deadbeef")) == expected


def test_empty_log_replays_to_zero() -> None:
    assert replay_rtmr3(()) == bytes(48)
    assert replay_rtmr3(parse_event_log("[]")) == bytes(48)


def test_replay_is_the_sha384_fold() -> None:
    events = [runtime("a", b"1"), runtime("b", b""), runtime("c", b"\x00" * 100)]
    mr = bytes(48)
    for event in events:
        mr = hashlib.sha384(mr + runtime_event_digest(event.event, event.payload)).digest()
    assert replay_rtmr3(events) == mr


def test_vector_replays_to_the_quoted_rtmr3(dstack_recording: DstackRecording) -> None:
    events = parse_event_log(dstack_recording.event_log)
    rtmr3 = quoted_rtmr3(dstack_recording)
    assert replay_rtmr3(events) == rtmr3
    assert rtmr3.hex().startswith("6f24c170d0fd63fc")
    check_rtmr3(events, rtmr3)


def test_vector_runtime_digests_are_empty(dstack_recording: DstackRecording) -> None:
    """Why we recompute: the agent ships runtime events without digests."""
    events = parse_event_log(dstack_recording.event_log)
    rtmr3_events = [e for e in events if e.imr == 3]
    assert len(rtmr3_events) == 9
    assert all(e.is_runtime_event and e.digest == b"" for e in rtmr3_events)


def test_sdk_replay_trusting_digest_fields_is_wrong(dstack_recording: DstackRecording) -> None:
    """dstack-sdk 0.5.4 replays the (empty) digest fields and misses the quoted RTMR3."""
    response = GetQuoteResponse(
        quote=dstack_recording.quote.hex(), event_log=dstack_recording.event_log
    )
    assert response.replay_rtmrs()[3] != quoted_rtmr3(dstack_recording).hex()


def payload_event_indices(recording: DstackRecording) -> list[int]:
    events = parse_event_log(recording.event_log)
    return [i for i, e in enumerate(events) if e.imr == 3 and e.payload]


@pytest.mark.parametrize("which", range(6))
def test_flipping_a_payload_byte_breaks_replay(
    dstack_recording: DstackRecording, which: int
) -> None:
    events = list(parse_event_log(dstack_recording.event_log))
    indices = payload_event_indices(dstack_recording)
    assert len(indices) == 6
    index = indices[which]
    payload = bytearray(events[index].payload)
    payload[len(payload) // 2] ^= 0x01
    events[index] = dataclasses.replace(events[index], payload=bytes(payload))
    with pytest.raises(AttestationInvalid, match="RTMR3 replay mismatch"):
        check_rtmr3(events, quoted_rtmr3(dstack_recording))


def test_flipping_a_payload_byte_in_the_json_breaks_replay(
    dstack_recording: DstackRecording,
) -> None:
    raw = json.loads(dstack_recording.event_log)
    compose = next(e for e in raw if e["event"] == "compose-hash")
    compose["event_payload"] = "00" + compose["event_payload"][2:]
    with pytest.raises(AttestationInvalid, match="RTMR3 replay mismatch"):
        check_rtmr3(parse_event_log(json.dumps(raw)), quoted_rtmr3(dstack_recording))


def mutations(events: list[TdxEvent]) -> dict[str, list[TdxEvent]]:
    rtmr3 = [i for i, e in enumerate(events) if e.imr == 3]
    first, second = rtmr3[1], rtmr3[2]
    swapped = list(events)
    swapped[first], swapped[second] = swapped[second], swapped[first]
    renamed = list(events)
    renamed[first] = dataclasses.replace(renamed[first], event="app-id2")
    moved = list(events)
    moved[first] = dataclasses.replace(moved[first], imr=2)
    return {
        "dropped": events[:first] + events[first + 1 :],
        "inserted": [*events, runtime("extra", b"x")],
        "swapped": swapped,
        "renamed": renamed,
        "moved to another IMR": moved,
    }


@pytest.mark.parametrize(
    "mutation", ["dropped", "inserted", "swapped", "renamed", "moved to another IMR"]
)
def test_structural_changes_break_replay(dstack_recording: DstackRecording, mutation: str) -> None:
    events = list(parse_event_log(dstack_recording.event_log))
    with pytest.raises(AttestationInvalid, match="RTMR3 replay mismatch"):
        check_rtmr3(mutations(events)[mutation], quoted_rtmr3(dstack_recording))


def test_boot_time_events_are_not_part_of_rtmr3(dstack_recording: DstackRecording) -> None:
    events = [
        dataclasses.replace(e, digest=bytes(48)) if e.imr != 3 else e
        for e in parse_event_log(dstack_recording.event_log)
    ]
    check_rtmr3(events, quoted_rtmr3(dstack_recording))


def test_wrong_digest_field_is_rejected() -> None:
    good = runtime("app-id", b"\x01\x02")
    correct = dataclasses.replace(good, digest=runtime_event_digest("app-id", b"\x01\x02"))
    assert replay_rtmr3([correct]) == replay_rtmr3([good])
    forged = dataclasses.replace(good, digest=bytes(48))
    with pytest.raises(AttestationInvalid, match="does not match its payload"):
        replay_rtmr3([forged])


def test_non_runtime_event_in_rtmr3_is_rejected() -> None:
    foreign = TdxEvent(imr=3, event_type=4, digest=bytes(48), event="", payload=b"")
    with pytest.raises(AttestationInvalid, match="not a dstack runtime event"):
        replay_rtmr3([runtime("a"), foreign])


def test_rtmr3_of_wrong_size_is_rejected() -> None:
    with pytest.raises(AttestationInvalid, match="RTMR3 replay mismatch"):
        check_rtmr3([], bytes(32))


def test_compose_hash_lookup(dstack_recording: DstackRecording) -> None:
    events = parse_event_log(dstack_recording.event_log)
    compose = runtime_event_payload(events, "compose-hash")
    assert compose is not None
    assert compose.hex() == "86b0e55f2fa8e4fb69d890f14f54d5612707646e2573d54e0d2ddaaade77caa9"
    assert runtime_event_payload(events, "no-such-event") is None


def test_lookup_stops_at_system_ready_and_takes_the_first() -> None:
    events = [
        runtime("compose-hash", b"\x01"),
        runtime("compose-hash", b"\x02"),
        runtime("system-ready"),
        runtime("app-id", b"\x03"),
    ]
    assert runtime_event_payload(events, "compose-hash") == b"\x01"
    assert runtime_event_payload(events, "app-id") is None


def test_lookup_ignores_other_imrs() -> None:
    boot = TdxEvent(imr=1, event_type=RUNTIME_EVENT_TYPE, digest=b"", event="x", payload=b"\x09")
    assert runtime_event_payload([boot], "x") is None


def valid_entry(**changes: object) -> str:
    entry: dict[str, object] = {
        "imr": 3,
        "event_type": RUNTIME_EVENT_TYPE,
        "digest": "",
        "event": "app-id",
        "event_payload": "abcd",
    }
    entry.update(changes)
    return json.dumps([entry])


def test_valid_entry_parses() -> None:
    (event,) = parse_event_log(valid_entry())
    assert event == runtime("app-id", b"\xab\xcd")
    (event,) = parse_event_log(valid_entry(version=1, hash_input="ff"))
    assert event.payload == b"\xab\xcd"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ("{}", "expected a JSON list"),
        ("[1]", "not an object"),
        (json.dumps([{"imr": 3}]), "lacks"),
        (valid_entry(imr=4), "imr must be"),
        (valid_entry(imr=-1), "imr must be"),
        (valid_entry(imr=True), "imr must be"),
        (valid_entry(imr="3"), "imr must be"),
        (valid_entry(event_type=-1), "event_type must be"),
        (valid_entry(event_type=1 << 32), "event_type must be"),
        (valid_entry(event_payload="abc"), "event_payload must be a hex"),
        (valid_entry(event_payload="zz"), "event_payload must be a hex"),
        (valid_entry(event_payload="ab cd"), "event_payload must be a hex"),
        (valid_entry(event_payload=None), "event_payload must be a hex"),
        (valid_entry(digest="0"), "digest must be a hex"),
        (valid_entry(event=5), "name must be a string"),
        (valid_entry(version=2), "unsupported version"),
    ],
)
def test_malformed_event_logs_are_rejected(text: str, message: str) -> None:
    with pytest.raises(AttestationInvalid, match=message):
        parse_event_log(text)


@settings(max_examples=30, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=40), min_size=1, max_size=6),
    data=st.data(),
)
def test_any_payload_change_changes_rtmr3(payloads: list[bytes], data: st.DataObject) -> None:
    events = [runtime(f"e{i}", p) for i, p in enumerate(payloads)]
    index = data.draw(st.integers(0, len(events) - 1))
    original = events[index].payload
    changed = data.draw(st.binary(max_size=40).filter(lambda b: b != original))
    mutated = list(events)
    mutated[index] = dataclasses.replace(events[index], payload=changed)
    with pytest.raises(AttestationInvalid, match="RTMR3 replay mismatch"):
        check_rtmr3(mutated, replay_rtmr3(events))


def test_event_type_is_little_endian_in_the_digest() -> None:
    big_endian = hashlib.sha384(struct.pack(">I", RUNTIME_EVENT_TYPE) + b":a:").digest()
    assert runtime_event_digest("a", b"") != big_endian
