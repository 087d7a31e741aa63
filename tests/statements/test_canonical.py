from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealroom.errors import StatementFormatError
from sealroom.statements.canonical import canonical_json, parse_json_strict

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_round_trip_is_stable(value: object) -> None:
    data = canonical_json(value)
    assert canonical_json(parse_json_strict(data, max_size=1 << 20, what="t")) == data


def test_rfc8785_key_order_and_escaping() -> None:
    # RFC 8785 section 3.2.3: keys sorted by UTF-16 code units; minimal escaping.
    value = {"\u20ac": 1, "\r": 2, "1": 3, "\U0001f600": 4, "\u0080": 5, "\u00f6": 6}
    assert canonical_json(value) == (
        '{"\\r":2,"1":3,"\u0080":5,"\u00f6":6,"\u20ac":1,"\U0001f600":4}'.encode()
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a":1,"a":2}', "duplicate key 'a'"),
        (b'{"a":1.5}', "not an integer"),
        (b'{"a":NaN}', "NaN is not valid JSON"),
        (b'{"a":Infinity}', "Infinity is not valid JSON"),
        (b'{"a":9007199254740992}', "outside the safe range"),
        (b"\xff{}", "not valid UTF-8"),
        ('\ufeff{"a":1}'.encode(), "byte-order mark"),
        (b'{"a":1} x', "not valid JSON"),
        (b'{"a":"\\ud800"}', "not valid Unicode"),
        (b"[" * 40 + b"]" * 40, "nesting deeper"),
    ],
)
def test_strict_parser_rejects(data: bytes, message: str) -> None:
    with pytest.raises(StatementFormatError, match=message):
        parse_json_strict(data, max_size=1 << 20, what="doc")


def test_size_limit() -> None:
    with pytest.raises(StatementFormatError, match="exceeds the limit"):
        parse_json_strict(json.dumps("x" * 100).encode(), max_size=50, what="doc")


def test_canonical_rejects_floats() -> None:
    with pytest.raises(StatementFormatError, match="float"):
        canonical_json({"epsilon": 0.1})
