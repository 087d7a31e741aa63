from __future__ import annotations

import pytest

from sealroom.crypto.keys import PartyId
from sealroom.crypto.request_signing import (
    HEADER_NONCE,
    HEADER_PARTY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MAX_SKEW_SECONDS,
    sign_request,
    signed_message,
    verify_request,
)
from sealroom.errors import AuthenticationFailed, InvalidInput
from tests.helpers import T0, identity

ALICE = identity("alice")
BOB = identity("bob")
BODY = b'{"reason":"no"}'
TARGET = "/v1/requests/x/withdraw?dry=1"


class Nonces:
    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def remember(self, party: PartyId, nonce: str, *, expires_at: int, now: int) -> None:
        if (party, nonce) in self.seen:
            raise AuthenticationFailed("replayed request: nonce already used")
        self.seen.add((party, nonce))


def signed(**overrides: object) -> dict[str, str]:
    args: dict[str, object] = {"method": "POST", "target": TARGET, "body": BODY, "now": T0}
    args.update(overrides)
    return sign_request(ALICE, **args)  # type: ignore[arg-type]


def check(headers: dict[str, str], nonces: Nonces | None = None, **overrides: object) -> None:
    args: dict[str, object] = {
        "method": "POST",
        "target": TARGET,
        "body": BODY,
        "signer": ALICE.public,
        "now": T0,
        "nonces": nonces or Nonces(),
    }
    args.update(overrides)
    verify_request(headers, **args)  # type: ignore[arg-type]


def test_round_trip_returns_the_party() -> None:
    headers = signed()
    result = verify_request(
        headers,
        method="post",
        target=TARGET,
        body=BODY,
        signer=ALICE.public,
        now=T0 + 10,
        nonces=Nonces(),
    )
    assert result.party == ALICE.party_id
    assert result.timestamp == T0


def test_message_layout_is_pinned() -> None:
    message = signed_message(
        method="get", target="/v1/x?a=1", body_sha256=bytes(32), timestamp=7, nonce="bm9uY2U="
    )
    assert message == (
        b"sealroom-http-request-v1\nGET\n/v1/x?a=1\n" + b"00" * 32 + b"\n7\nbm9uY2U="
    )


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"method": "PUT"}, "does not verify"),
        ({"target": "/v1/requests/y/withdraw?dry=1"}, "does not verify"),
        ({"target": "/v1/requests/x/withdraw"}, "does not verify"),
        ({"body": BODY + b" "}, "does not verify"),
        ({"signer": BOB.public}, "does not belong"),
        ({"now": T0 + MAX_SKEW_SECONDS + 1}, "stale"),
        ({"now": T0 - MAX_SKEW_SECONDS - 1}, "stale"),
    ],
)
def test_any_change_is_refused(change: dict[str, object], needle: str) -> None:
    with pytest.raises(AuthenticationFailed, match=needle):
        check(signed(), **change)


def test_window_edges_are_inclusive() -> None:
    check(signed(), now=T0 + MAX_SKEW_SECONDS)
    check(signed(), now=T0 - MAX_SKEW_SECONDS)


def test_replay_is_refused_and_only_after_a_valid_signature() -> None:
    nonces = Nonces()
    headers = signed()
    forged = dict(headers, **{HEADER_SIGNATURE: signed(body=b"other")[HEADER_SIGNATURE]})
    with pytest.raises(AuthenticationFailed, match="does not verify"):
        check(forged, nonces)
    assert nonces.seen == set()  # a forger cannot burn the nonce
    check(headers, nonces)
    with pytest.raises(AuthenticationFailed, match="replayed"):
        check(headers, nonces)


@pytest.mark.parametrize(
    ("header", "value", "needle"),
    [
        (HEADER_PARTY, None, "missing header"),
        (HEADER_TIMESTAMP, None, "missing header"),
        (HEADER_NONCE, None, "missing header"),
        (HEADER_SIGNATURE, None, "missing header"),
        (HEADER_PARTY, "alice", "not a party id"),
        (HEADER_TIMESTAMP, "1.5", "unix seconds"),
        (HEADER_TIMESTAMP, "-3", "unix seconds"),
        (HEADER_TIMESTAMP, "01", "unix seconds"),
        (HEADER_NONCE, "c2hvcnQ=", "16 bytes"),
        (HEADER_NONCE, "!!", "base64"),
        (HEADER_SIGNATURE, "AAAA", "64 bytes"),
    ],
)
def test_malformed_headers_say_what_is_wrong(header: str, value: str | None, needle: str) -> None:
    headers = signed()
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    with pytest.raises(AuthenticationFailed, match=needle):
        check(headers)


def test_line_breaks_cannot_smuggle_fields() -> None:
    with pytest.raises(InvalidInput, match="line break"):
        signed(target="/v1/x\nGET")
