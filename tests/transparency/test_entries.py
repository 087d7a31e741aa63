"""Log leaves of private statements: the commitment entry's exact bytes, its parser, and the
commitment's domain, salt and binding."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealroom.errors import InvalidInput, StatementFormatError
from sealroom.statements import sign_statement
from sealroom.transparency.entries import (
    SALT_SIZE,
    check_opening,
    commitment_entry,
    committed_entry,
    entry_leaf_hash,
    parse_committed_entry,
    statement_commitment,
)
from tests.helpers import attestation, identity, request

SALT = bytes(range(SALT_SIZE))
STATEMENT = b'{"payload":"...","type":"sealroom.computation-request","version":1}'
salts = st.binary(min_size=SALT_SIZE, max_size=SALT_SIZE)


def test_known_answer() -> None:
    # Pinned bytes: a change to the tag, the order or the entry format breaks every bundle.
    digest = hashlib.sha256(b"sealroom-log-commitment-v1:" + SALT + STATEMENT).hexdigest()
    assert statement_commitment(SALT, STATEMENT) == "sha256:" + digest
    assert committed_entry(STATEMENT, SALT) == (
        b'{"commitment":"sha256:' + digest.encode() + b'","type":"sealroom.log-commitment",'
        b'"version":1}'
    )
    assert committed_entry(STATEMENT, None) == STATEMENT


@given(salt=salts, statement=st.binary(max_size=512))
def test_the_entry_parses_back_and_opens_only_with_its_salt(salt: bytes, statement: bytes) -> None:
    entry = committed_entry(statement, salt)
    parsed = parse_committed_entry(entry)
    assert parsed is not None
    assert parsed.commitment == statement_commitment(salt, statement)
    check_opening(entry, statement, salt)
    other = bytes([salt[0] ^ 1]) + salt[1:]
    with pytest.raises(StatementFormatError):
        check_opening(entry, statement, other)
    with pytest.raises(StatementFormatError):
        check_opening(entry, statement + b" ", salt)
    assert entry_leaf_hash(statement, salt) != entry_leaf_hash(statement, None)


def test_a_statement_in_clear_is_never_read_as_a_commitment() -> None:
    alice = identity("alice")
    for statement in (attestation(alice), request(alice, ("sha256:" + "0" * 64,))):
        assert parse_committed_entry(sign_statement(statement, alice).envelope.to_json()) is None


@pytest.mark.parametrize(
    "entry",
    [
        committed_entry(STATEMENT, SALT).replace(b"sha256:", b"SHA256:"),
        committed_entry(STATEMENT, SALT)[:-1],
        committed_entry(STATEMENT, SALT) + b"\n",
        committed_entry(STATEMENT, SALT).replace(b'"version":1', b'"version":2'),
        b'{"commitment":"sha256:' + b"A" * 64 + b'","type":"sealroom.log-commitment","version":1}',
        b'{"commitment":"sha256:' + b"a" * 63 + b'","type":"sealroom.log-commitment","version":1}',
        b'{"commitment":"sha256:'
        + b"a" * 64
        + b'\n","type":"sealroom.log-commitment","version":1}',
    ],
)
def test_near_misses_are_not_commitment_entries(entry: bytes) -> None:
    assert parse_committed_entry(entry) is None


@pytest.mark.parametrize("salt", [b"", b"\x00" * 31, b"\x00" * 33])
def test_a_salt_must_be_32_bytes(salt: bytes) -> None:
    with pytest.raises(InvalidInput):
        statement_commitment(salt, STATEMENT)
    for bad in ("sha256:xyz", "sha256:" + "a" * 64 + "\n"):
        with pytest.raises(InvalidInput):
            commitment_entry(bad)
