from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sealroom.api.app import create_app
from sealroom.api.testing import run_in_thread
from sealroom.crypto.request_signing import sign_request
from sealroom.statements import ComputationRequest, sign_statement
from sealroom.transparency.entries import statement_commitment
from tests.api.api_helpers import PAIR_COUNT, Client, Clock, test_registry
from tests.helpers import T0, attestation, identity


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[httpx.Client, Clock]]:
    clock = Clock(T0)
    app = create_app(db_url=f"sqlite:///{tmp_path / 'c.db'}", registry=test_registry(), clock=clock)
    with run_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http, clock


def _error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["code"] == code
    assert body["message"]
    assert body["detail"]


def test_api_auth_failures(env: tuple[httpx.Client, Clock]) -> None:
    http, clock = env
    alice = Client(http, identity("alice"), clock)
    assert alice.register("alice").status_code == 201
    assert alice.register("alice").status_code == 200
    _error(alice.register("alice2"), 409, "conflict")
    _error(http.get("/v1/inbox"), 401, "unauthenticated")  # no headers
    ok = alice.call("GET", "/v1/inbox")
    assert ok.status_code == 200
    assert ok.json() == {"items": []}
    headers = sign_request(alice.identity, method="GET", target="/v1/inbox", body=b"", now=T0)
    assert http.get("/v1/inbox", headers=headers).status_code == 200
    _error(http.get("/v1/inbox", headers=headers), 401, "unauthenticated")  # replay
    stale = sign_request(alice.identity, method="GET", target="/v1/inbox", body=b"", now=T0 - 301)
    _error(http.get("/v1/inbox", headers=stale), 401, "unauthenticated")
    other_target = sign_request(
        alice.identity, method="GET", target="/v1/requests", body=b"", now=T0
    )
    _error(http.get("/v1/inbox", headers=other_target), 401, "unauthenticated")
    body = json.dumps({"reason": "x"}).encode()
    wrong = sign_request(
        alice.identity, method="POST", target="/v1/requests/x/withdraw", body=b"{}", now=T0
    )
    _error(
        http.post(
            "/v1/requests/x/withdraw",
            content=body,
            headers={**wrong, "content-type": "application/json"},
        ),
        401,
        "unauthenticated",
    )
    _error(Client(http, identity("nobody"), clock).call("GET", "/v1/inbox"), 401, "unauthenticated")
    # registering someone else's keys is refused
    mallory = Client(http, identity("mallory"), clock)
    pub = identity("bob").public
    from sealroom.crypto.keys import b64encode

    r = mallory.call(
        "POST",
        "/v1/parties",
        {
            "name": "bob",
            "signing_key": b64encode(pub.signing_key),
            "sealing_key": b64encode(pub.sealing_key),
        },
    )
    _error(r, 401, "unauthenticated")


def test_api_bad_bodies_and_limits(env: tuple[httpx.Client, Clock]) -> None:
    http, clock = env
    alice = Client(http, identity("alice"), clock)
    alice.register("alice")
    _error(alice.call("POST", "/v1/policies", raw=b"{not json"), 400, "statement_format")
    _error(alice.call("POST", "/v1/policies", raw=b"[1]"), 400, "invalid_input")
    _error(alice.call("POST", "/v1/policies", {"policy": {"type": 1}}), 400, "statement_format")
    _error(
        alice.call("POST", "/v1/policies", {"x": 1}, content_type="text/plain"),
        415,
        "unsupported_media_type",
    )
    big = b'{"policy": "' + b"a" * (1 << 20) + b'"}'
    _error(alice.call("POST", "/v1/policies", raw=big), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"a" * (64 << 10)

    r = http.post("/v1/policies", content=chunks(), headers={"content-type": "application/json"})
    _error(r, 413, "body_too_large")
    _error(http.get("/v1/search", params={"limit": "abc"}), 400, "invalid_input")
    _error(http.get("/v1/datasets/sha256:" + "0" * 64), 404, "not_found")
    _error(http.get("/v1/no-such-route"), 404, "not_found")
    assert http.get("/v1/health").json()["status"] == "ok"  # still serving
    spec = http.get("/openapi.json").json()
    assert "/v1/search" in spec["paths"]


def test_api_internal_error_hides_details(tmp_path: Path) -> None:
    def broken_clock() -> int:
        raise RuntimeError("secret-internal-detail")

    app = create_app(
        db_url=f"sqlite:///{tmp_path / 'c.db'}", registry=test_registry(), clock=broken_clock
    )
    with run_in_thread(app) as url, httpx.Client(base_url=url) as http:
        alice = Client(http, identity("alice"), Clock(T0))
        r = alice.call("GET", "/v1/inbox")
        _error(r, 500, "internal")
        assert "secret" not in r.text
        assert http.get("/v1/health").status_code == 200


def test_api_keyword_overlap_alias_and_workflow(env: tuple[httpx.Client, Clock]) -> None:
    http, clock = env
    owners = [Client(http, identity(n), clock) for n in ("alice", "bob")]
    req = Client(http, identity("carol"), clock)
    ids = []
    for c in (*owners, req):
        assert c.register(c.identity.party_id[:8]).status_code == 201
    for c in owners:
        att = sign_statement(attestation(c.identity), c.identity)
        r = c.call("POST", "/v1/datasets", {"attestation": att.envelope.to_dict(), "policy": None})
        assert r.status_code == 201, r.text
        inc = r.json()["inclusion"]
        assert inc["size"] >= 1
        assert isinstance(inc["proof"], list)
        ids.append(att.digest)
    body = {"dataset_a": ids[0], "dataset_b": ids[1]}
    draft = req.call("POST", "/v1/compute/keyword-overlap", body)
    assert draft.status_code == 200, draft.text
    d = draft.json()["draft"]
    assert d["computation"]["id"] == PAIR_COUNT.id
    signed = sign_statement(ComputationRequest.model_validate_json(json.dumps(d)), req.identity)
    created = req.call(
        "POST", "/v1/compute/keyword-overlap", {**body, "request": signed.envelope.to_dict()}
    )
    assert created.status_code == 201, created.text
    same = req.call("POST", "/v1/requests", {"request": signed.envelope.to_dict()})
    assert same.status_code == 200
    assert same.json() == created.json()
    rid = signed.digest
    assert owners[0].call("GET", f"/v1/requests/{rid}").status_code == 200
    _error(
        Client(http, identity("dave"), clock).call("GET", f"/v1/requests/{rid}"),
        401,
        "unauthenticated",
    )
    dave = Client(http, identity("dave"), clock)
    dave.register("dave")
    _error(dave.call("GET", f"/v1/requests/{rid}"), 404, "not_found")
    inbox = owners[1].call("GET", "/v1/inbox").json()["items"]
    assert [i["request"] for i in inbox] == [rid]
    _error(
        owners[0].call(
            "PUT", f"/v1/requests/{rid}/inputs/{ids[0]}", raw=b"x", content_type="application/json"
        ),
        415,
        "unsupported_media_type",
    )
    _error(
        owners[0].call(
            "PUT",
            f"/v1/requests/{rid}/inputs/{ids[0]}",
            raw=b"x",
            content_type="application/octet-stream",
        ),
        400,
        "invalid_input",  # no Sealroom-Enclave header
    )
    w = req.call("POST", f"/v1/requests/{rid}/withdraw", {"reason": "done"})
    assert w.status_code == 200
    assert w.json()["status"] == "withdrawn"
    _error(req.call("POST", f"/v1/requests/{rid}/withdraw", {"reason": "again"}), 409, "conflict")
    cp = http.get("/v1/log/checkpoint")
    assert cp.status_code == 200
    assert cp.headers["content-type"].startswith("text/plain")
    key = http.get("/v1/log/key").json()
    assert key["origin"] == "sealroom.local/log"
    # The request is private: its leaf is a salted commitment only the request's parties
    # (who get the salt with the request) can open.
    entry = http.get(f"/v1/log/entries/{same.json()['log_index']}").json()
    assert entry["entry"] is None
    salt = base64.b64decode(same.json()["log_salt"])
    assert entry["commitment"] == statement_commitment(salt, signed.envelope.to_json())
    assert http.get("/v1/log/inclusion", params={"index": 0, "size": 3}).status_code == 200
    assert http.get("/v1/log/consistency", params={"first": 1, "second": 3}).status_code == 200
