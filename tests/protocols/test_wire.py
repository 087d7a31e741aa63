"""The protocol frame codec: round trips, and every way a frame can be malformed."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealroom.errors import ProtocolError
from sealroom.protocols.wire import MAGIC, MAX_HEADER, Frame

SESSION = "0" * 31 + "1"
names = st.from_regex(r"^[a-z0-9][a-z0-9._-]{0,20}$", fullmatch=True)
json_scalars = st.one_of(
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
)


def frame(**kw: object) -> Frame:
    base: dict[str, object] = {
        "protocol": "psi",
        "version": 1,
        "session": SESSION,
        "kind": "masked",
        "seq": 0,
        "sender": "a",
        "recipient": "b",
        "fields": {"n": 2},
        "blobs": {"x": b"\x07" * 64},
    }
    base.update(kw)
    return Frame(**base)  # type: ignore[arg-type]


@given(
    kind=names,
    seq=st.integers(min_value=0, max_value=2**31 - 1),
    fields=st.dictionaries(names, st.one_of(json_scalars, st.lists(json_scalars, max_size=3))),
    blobs=st.dictionaries(names, st.binary(max_size=100), max_size=4),
)
def test_round_trip(
    kind: str, seq: int, fields: dict[str, object], blobs: dict[str, bytes]
) -> None:
    f = frame(kind=kind, seq=seq, fields=fields, blobs=blobs)
    assert Frame.decode(f.encode()) == f


def test_every_prefix_is_rejected() -> None:
    data = frame().encode()
    for cut in range(len(data)):
        with pytest.raises(ProtocolError):
            Frame.decode(data[:cut])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"XXXX" + d[4:], "magic"),
        (lambda d: d[:4] + b"\x02" + d[5:], "unknown wire version 2"),
        (lambda d: d + b"\x00", "1 trailing bytes"),
        (lambda d: d[:5] + struct.pack(">I", MAX_HEADER + 1) + d[9:], "header length"),
        (lambda d: d[:-1], "truncated inside blob"),
    ],
)
def test_negative_vectors(mutate: object, message: str) -> None:
    data = frame().encode()
    with pytest.raises(ProtocolError, match=message):
        Frame.decode(mutate(data))  # type: ignore[operator]


def _with_header(header: bytes, tail: bytes = b"") -> bytes:
    return MAGIC + b"\x01" + struct.pack(">I", len(header)) + header + tail


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"[]", "missing or unknown keys"),
        (b'{"protocol":"psi"}', "missing or unknown keys"),
        (b"{not json", "JSON"),
        (
            b'{"blobs":[],"fields":{},"kind":"k","protocol":"psi","recipient":"b","sender":"a","seq":0,"session":"'
            + SESSION.encode()
            + b'","version":1,"extra":1}',
            "missing or unknown keys",
        ),
        (
            b'{"blobs":[],"fields":{},"kind":"k","protocol":"psi","recipient":"b","sender":"a","seq":0,"session":"'
            + SESSION.encode()
            + b'","version":1.5}',
            "not an integer",
        ),
        (
            b'{"blobs":[["x",1],["x",1]],"fields":{},"kind":"k","protocol":"psi","recipient":"b","sender":"a","seq":0,"session":"'
            + SESSION.encode()
            + b'","version":1}',
            "twice",
        ),
        (
            b'{"blobs":[["x",-1]],"fields":{},"kind":"k","protocol":"psi","recipient":"b","sender":"a","seq":0,"session":"'
            + SESSION.encode()
            + b'","version":1}',
            "malformed",
        ),
        (
            b'{"blobs":[],"fields":{},"kind":"K!","protocol":"psi","recipient":"b","sender":"a","seq":0,"session":"'
            + SESSION.encode()
            + b'","version":1}',
            "not a valid name",
        ),
        (
            b'{"blobs":[],"fields":{},"kind":"k","protocol":"psi","recipient":"b","sender":"a","seq":0,"session":"xyz","version":1}',
            "session",
        ),
        (
            b'{"protocol":"psi","blobs":[],"fields":{},"kind":"k","recipient":"b","sender":"a","seq":0,"session":"'
            + SESSION.encode()
            + b'","version":1}',
            "canonical",
        ),
    ],
)
def test_bad_headers(header: bytes, message: str) -> None:
    tail = b"\x00" * 2 if b'"x",' in header else b""
    with pytest.raises(ProtocolError, match=message):
        Frame.decode(_with_header(header, tail))


def test_size_limit_is_checked_first() -> None:
    data = frame(blobs={"x": b"\x00" * 5000}).encode()
    with pytest.raises(ProtocolError, match="exceeds the limit of 4096"):
        Frame.decode(data, max_size=4096)


def test_accessors_name_the_field() -> None:
    f = frame(fields={"n": 2, "s": "hi", "b": True, "neg": -1}, blobs={"x": b"\x00" * 65})
    assert f.int_field("n", lo=0, hi=10) == 2
    assert f.str_field("s", choices=["hi"]) == "hi"
    assert f.bool_field("b") is True
    with pytest.raises(ProtocolError, match="neg must be an integer in 0..10"):
        f.int_field("neg", lo=0, hi=10)
    with pytest.raises(ProtocolError, match="b must be an integer"):
        f.int_field("b", lo=0, hi=10)  # a bool is not an int here
    with pytest.raises(ProtocolError, match="'missing' is missing"):
        f.int_field("missing", lo=0, hi=1)
    with pytest.raises(ProtocolError, match="whole number of 32-byte items"):
        f.items("x", size=32, max_count=10)
    with pytest.raises(ProtocolError, match="at most 64 bytes"):
        f.items("x", size=32, max_count=2)
    with pytest.raises(ProtocolError, match="unexpected \\['b', 'neg', 's'\\]"):
        f.only(fields=["n"], blobs=["x"])
    with pytest.raises(ProtocolError, match="not one of"):
        f.str_field("s", choices=["bye"])


def test_fields_must_be_json_without_floats() -> None:
    with pytest.raises(ProtocolError, match="cannot be encoded"):
        frame(fields={"x": 0.5}).encode()
