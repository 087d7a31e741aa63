"""The SDK's wire behaviour, against httpx.MockTransport: signing, bodies, errors, parsing."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from sealroom.client.errors import BodyTooLarge, ServerError, error_for
from sealroom.client.http import Client
from sealroom.crypto.keys import PartyId
from sealroom.crypto.request_signing import verify_request
from sealroom.errors import (
    AuthenticationFailed,
    BackendUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    PolicyDenied,
    ProtocolError,
    SignatureInvalid,
    StatementFormatError,
)
from sealroom.statements import sign_statement
from tests.helpers import T0, attestation, digest_hex, identity

ALICE = identity("alice")
Handler = Callable[[httpx.Request], httpx.Response]


class Nonces:
    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def remember(self, party: PartyId, nonce: str, *, expires_at: int, now: int) -> None:
        if (party, nonce) in self.seen:
            raise AuthenticationFailed("replayed nonce")
        self.seen.add((party, nonce))


def client_with(handler: Handler, *, signed_as: object = ALICE) -> Client:
    return Client(
        base_url="http://coordinator.test",
        identity=ALICE if signed_as is ALICE else None,
        transport=httpx.MockTransport(handler),
        clock=lambda: T0,
    )


def error(status: int, code: str, detail: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": "m", "detail": detail}})


def request_view_json(req_digest: str, envelope: dict[str, object]) -> dict[str, object]:
    return {
        "request": req_digest,
        "envelope": envelope,
        "requester": ALICE.party_id,
        "computation": {"id": "topic-overlap", "version": "1.0.0", "code_digest": digest_hex("c")},
        "parameters": {"k": 5},
        "inputs": [
            {
                "dataset": digest_hex("d"),
                "owner": ALICE.party_id,
                "decision": "pending",
                "mode": None,
                "reason": None,
                "approval": None,
                "sealed": False,
                "enclave": None,
            }
        ],
        "recipients": [ALICE.party_id],
        "status": "pending",
        "status_reason": None,
        "precheck": [
            {"dataset": digest_hex("d"), "allowed": True, "automatic": False, "reasons": ["x"]}
        ],
        "history": [{"status": "pending", "at": T0, "reason": None}],
        "receipt": None,
        "created_at": T0,
        "expires_at": T0 + 10,
        "log_index": 3,
        "future_field": "ignored",
    }


def test_signed_post_verifies_over_exact_target_and_body() -> None:
    seen: list[httpx.Request] = []
    att = sign_statement(attestation(ALICE), ALICE)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return error(409, "conflict", "already there")

    client = client_with(handler)
    with pytest.raises(Conflict, match="already there"):
        client.publish_dataset(att.envelope)
    req = seen[0]
    body = req.content
    assert json.loads(body) == {"attestation": att.envelope.to_dict(), "policy": None}
    signed = verify_request(
        req.headers,
        method="POST",
        target=req.url.raw_path.decode(),
        body=body,
        signer=ALICE.public,
        now=T0,
        nonces=Nonces(),
    )
    assert signed.party == ALICE.party_id
    # A different body or target does not verify with the same headers.
    with pytest.raises(AuthenticationFailed):
        verify_request(
            req.headers,
            method="POST",
            target="/v1/datasets",
            body=body + b" ",
            signer=ALICE.public,
            now=T0,
            nonces=Nonces(),
        )


def test_signed_get_covers_the_query_string_as_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": []})

    client = client_with(handler)
    assert client.list_requests(role="owner", status="pending") == ()
    req = seen[0]
    target = req.url.raw_path.decode()
    assert target == "/v1/requests?role=owner&status=pending"
    verify_request(
        req.headers,
        method="GET",
        target=target,
        body=b"",
        signer=ALICE.public,
        now=T0,
        nonces=Nonces(),
    )
    with pytest.raises(AuthenticationFailed):
        verify_request(
            req.headers,
            method="GET",
            target="/v1/requests?role=requester&status=pending",
            body=b"",
            signer=ALICE.public,
            now=T0,
            nonces=Nonces(),
        )


def test_public_reads_are_not_signed_and_search_encodes_repeated_keywords() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": [], "next_cursor": None, "total": 0})

    page = client_with(handler, signed_as=None).search(
        "tee logs", keywords=["dstack", "kms & tls"], start=5, limit=3
    )
    assert page.total == 0
    req = seen[0]
    assert "sealroom-signature" not in req.headers
    assert req.url.raw_path.decode() == (
        "/v1/search?q=tee%20logs&keyword=dstack&keyword=kms%20%26%20tls&from=5&limit=3"
    )


def test_signed_call_without_identity_is_refused_locally() -> None:
    def handler(request: httpx.Request) -> httpx.Response:  # pragma: no cover - never called
        raise AssertionError("no request may be sent")

    with pytest.raises(AuthenticationFailed, match="sealroom init"):
        client_with(handler, signed_as=None).inbox()


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "invalid_input", InvalidInput),
        (400, "statement_format", StatementFormatError),
        (400, "signature_invalid", SignatureInvalid),
        (401, "unauthenticated", AuthenticationFailed),
        (403, "policy_denied", PolicyDenied),
        (404, "not_found", NotFound),
        (409, "conflict", Conflict),
        (413, "body_too_large", BodyTooLarge),
        (503, "backend_unavailable", BackendUnavailable),
        (500, "internal", ServerError),
    ],
)
def test_error_codes_map_to_the_error_tree(status: int, code: str, cls: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return error(status, code, f"detail for {code}")

    with pytest.raises(cls, match=f"detail for {code}") as info:
        client_with(handler).get_request(digest_hex("r"))
    assert type(info.value) is cls
    assert info.value.code == code  # type: ignore[attr-defined]


def test_unknown_error_code_falls_back_on_status() -> None:
    exc = error_for(409, "weird_new_code", "it clashed")
    assert isinstance(exc, Conflict)
    assert "weird_new_code" in str(exc)
    assert isinstance(error_for(418, "teapot", "no"), ProtocolError)


def test_error_without_sealroom_body_is_a_protocol_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    with pytest.raises(ProtocolError, match="HTTP 502"):
        client_with(handler).health()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"status": "ok"}',
        b'{"status": "ok", "version": 3}',
        b"[]",
    ],
)
def test_malformed_responses_are_protocol_errors(body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    with pytest.raises(ProtocolError, match="GET /v1/health"):
        client_with(handler).health()


def test_request_view_parses_and_envelope_is_checked() -> None:
    from sealroom.statements import ComputationRequest
    from tests.helpers import request as make_request

    req = sign_statement(make_request(ALICE, (digest_hex("d"),)), ALICE)
    good = request_view_json(req.digest, req.envelope.to_dict())

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=good)

    view = client_with(handler).get_request(req.digest)
    assert view.status == "pending"
    assert view.inputs[0].decision == "pending"
    assert view.envelope.open(ComputationRequest).digest == req.digest
    bad = dict(good, envelope={**req.envelope.to_dict(), "signature": "nope"})

    def bad_handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=bad)

    with pytest.raises(ProtocolError, match="envelope"):
        client_with(bad_handler).get_request(req.digest)
    wrong_status = dict(good, status="teleported")

    def status_handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=wrong_status)

    with pytest.raises(ProtocolError, match="status"):
        client_with(status_handler).get_request(req.digest)


def test_connection_failure_names_the_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(BackendUnavailable, match=r"http://coordinator\.test"):
        client_with(handler).health()


def test_real_connection_refused_is_backend_unavailable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Client(base_url=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(BackendUnavailable, match=str(port)):
        client.health()


def test_upload_sends_octet_stream_with_enclave_header_and_progress() -> None:
    seen: list[httpx.Request] = []
    progress: list[tuple[int, int]] = []
    blob = bytes(range(256)) * 10_000

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return error(409, "conflict", "already uploaded")

    with pytest.raises(Conflict):
        client_with(handler).upload_input(
            digest_hex("r"),
            digest_hex("d"),
            blob,
            enclave=digest_hex("e"),
            progress=lambda done, total: progress.append((done, total)),
        )
    req = seen[0]
    assert req.content == blob
    assert req.headers["content-type"] == "application/octet-stream"
    assert req.headers["sealroom-enclave"] == digest_hex("e")
    assert req.url.raw_path.decode() == (f"/v1/requests/{digest_hex('r')}/inputs/{digest_hex('d')}")
    verify_request(
        req.headers,
        method="PUT",
        target=req.url.raw_path.decode(),
        body=blob,
        signer=ALICE.public,
        now=T0,
        nonces=Nonces(),
    )
    assert progress[0] == (0, len(blob))
    assert progress[-1] == (len(blob), len(blob))


def test_claim_job_204_is_none() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.url.path == "/v1/jobs/claim"
        return httpx.Response(204)

    assert client_with(handler).claim_job() is None


def test_path_parameters_are_escaped() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return error(404, "not_found", "no such party")

    with pytest.raises(NotFound):
        client_with(handler).party("../v1/health")
    assert seen == ["/v1/parties/..%2Fv1%2Fhealth"]
