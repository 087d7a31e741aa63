"""Bad input at the API: a specific 4xx with a JSON error body, nothing stored, the server serving on.

Run on SQLite and on PostgreSQL (refusals inside a write transaction must roll back on both).

One table of refused calls against one coordinator with a pending request. Every
case checks the status and error code, then that nothing changed (transparency
log size, datasets, the request) and that a valid signed call still succeeds.
Calls that first succeed (replays, withdrawals) have their own tests.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from sealroom.api.app import create_app
from sealroom.api.middleware import MAX_JSON_BODY, MAX_SEALED_BODY
from sealroom.api.testing import run_in_thread
from sealroom.crypto.keys import b64encode
from sealroom.crypto.request_signing import sign_request
from sealroom.statements import DatasetAttestation, Statement, sign_statement
from sealroom.statements.canonical import canonical_json
from sealroom.statements.envelope import pae
from tests.api.api_helpers import PAIR_COUNT, Client, Clock, test_registry
from tests.helpers import T0, approval, attestation, identity, request

UNKNOWN = "sha256:" + "0" * 64


@dataclass(frozen=True, slots=True)
class World:
    url: str
    http: httpx.Client
    clock: Clock
    alice: Client
    bob: Client
    carol: Client
    dave: Client
    ds_a: str
    ds_b: str
    rid: str


def _signed(statement: Statement, who: Client) -> dict[str, Any]:
    return sign_statement(statement, who.identity).envelope.to_dict()


def _publish(owner: Client, title: str) -> str:
    env = _signed(attestation(owner.identity, title=title), owner)
    r = owner.call("POST", "/v1/datasets", {"attestation": env, "policy": None})
    assert r.status_code == 201, r.text
    dataset: str = r.json()["dataset"]
    return dataset


def _pair_request(requester: Client, inputs: tuple[str, ...], owners: tuple[Client, ...]) -> Any:
    recipients = (requester.identity.party_id, *(o.identity.party_id for o in owners))
    return request(
        requester.identity,
        inputs,
        computation=PAIR_COUNT.ref(),
        recipients=recipients,
        nonce=b64encode(os.urandom(16)),
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An SQLite file, or a throwaway PostgreSQL schema (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('bad-input') / 'c.db'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    schema = f"sr_badin_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(scope="module")
def world(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    clock = Clock(T0)
    keys = tmp_path_factory.mktemp("bad-input-keys")
    app = create_app(db_url=db_url, registry=test_registry(), clock=clock, keys_dir=keys)
    with run_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        alice, bob, carol, dave = (
            Client(http, identity(n), clock) for n in ("alice", "bob", "carol", "dave")
        )
        for c, name in ((alice, "alice"), (bob, "bob"), (carol, "carol"), (dave, "dave")):
            assert c.register(name).status_code == 201
        ds_a = _publish(alice, "alice data")
        ds_b = _publish(bob, "bob data")
        req = _pair_request(carol, (ds_a, ds_b), (alice, bob))
        r = carol.call("POST", "/v1/requests", {"request": _signed(req, carol)})
        assert r.status_code == 201, r.text
        yield World(url, http, clock, alice, bob, carol, dave, ds_a, ds_b, r.json()["request"])


def _log_size(http: httpx.Client) -> int:
    r = http.get("/v1/log/checkpoint")
    assert r.status_code == 200
    return int(r.text.splitlines()[1])


def snapshot(w: World) -> tuple[Any, ...]:
    """Everything a refused call must leave as it was."""
    datasets = w.http.get("/v1/datasets", params={"limit": 100}).json()["items"]
    view = w.carol.call("GET", f"/v1/requests/{w.rid}").json()
    mine = w.carol.call("GET", "/v1/requests").json()["items"]
    return (
        _log_size(w.http),
        sorted((d["dataset"], d["status"]) for d in datasets),
        (view["status"], [(i["decision"], i["sealed"]) for i in view["inputs"]]),
        sorted(v["request"] for v in mine),
    )


def _raw_http(url: str, head: str) -> httpx.Response:
    """Send a request head with no body over a plain socket (a body we never send)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(head.encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return httpx.Response(int(status_line.split()[1]), content=body)


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    call: Callable[[World], httpx.Response]
    status: int
    code: str
    detail: str = ""


def _withdraw_a(w: World, **kw: Any) -> httpx.Response:
    return w.alice.call("POST", f"/v1/datasets/{w.ds_a}/withdraw", **kw)


def _headers_at(
    w: World, who: Client, method: str, path: str, body: bytes, at: int
) -> httpx.Response:
    h = sign_request(who.identity, method=method, target=path, body=body, now=at)
    return w.http.request(
        method, path, content=body, headers={**h, "content-type": "application/json"}
    )


def _other_body(w: World) -> httpx.Response:
    path = f"/v1/datasets/{w.ds_a}/withdraw"
    h = sign_request(w.alice.identity, method="POST", target=path, body=b'{"reason":"a"}', now=T0)
    return w.http.post(
        path, content=b'{"reason":"b"}', headers={**h, "content-type": "application/json"}
    )


def _tampered(w: World) -> httpx.Response:
    env = _signed(attestation(w.alice.identity, title="tampered"), w.alice)
    other = _signed(attestation(w.alice.identity, title="other"), w.alice)
    env["signature"] = other["signature"]
    return w.alice.call("POST", "/v1/datasets", {"attestation": env, "policy": None})


def _foreign_attestation(w: World) -> httpx.Response:
    env = _signed(attestation(w.alice.identity, title="alice's, posted by dave"), w.alice)
    return w.dave.call("POST", "/v1/datasets", {"attestation": env, "policy": None})


def _hand_signed(w: World, fields: dict[str, Any]) -> httpx.Response:
    """An attestation envelope signed over a payload the statement model would never build."""
    payload = canonical_json(fields)
    t, v = DatasetAttestation.TYPE, DatasetAttestation.VERSION
    pub = w.alice.identity.public
    env = {
        "type": t,
        "version": v,
        "payload": b64encode(payload),
        "signer": {
            "signing_key": b64encode(pub.signing_key),
            "sealing_key": b64encode(pub.sealing_key),
        },
        "signature": b64encode(w.alice.identity.sign(pae(t, v, payload))),
    }
    return w.alice.call("POST", "/v1/datasets", {"attestation": env, "policy": None})


def _huge_field(w: World, size: int) -> httpx.Response:
    fields = attestation(w.alice.identity).model_dump(mode="json", by_alias=True)
    fields["description"] = "x" * size
    return _hand_signed(w, fields)


def _request_on(w: World, inputs: tuple[str, ...]) -> httpx.Response:
    """carol asks for the pair computation on ``inputs`` (owned by alice, then bob)."""
    req = _pair_request(w.carol, inputs, (w.alice, w.bob)[: len(set(inputs) - {UNKNOWN})])
    return w.carol.call("POST", "/v1/requests", {"request": _signed(req, w.carol)})


def _approve(
    w: World, sender: Client, signer: Client, dataset: str, rid: str = ""
) -> httpx.Response:
    appr = approval(signer.identity, rid or w.rid, dataset)
    return sender.call(
        "POST", f"/v1/requests/{w.rid}/approvals", {"approval": _signed(appr, signer)}
    )


def _oversize_sealed(w: World) -> httpx.Response:
    path = f"/v1/requests/{w.rid}/inputs/{w.ds_a}"
    return _raw_http(
        w.url,
        f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {MAX_SEALED_BODY + 1}\r\nConnection: close\r\n\r\n",
    )


CASES = [
    # malformed and oversize bodies
    Case("empty body", lambda w: w.carol.call("POST", "/v1/requests"), 400, "invalid_input", "required"),
    Case("not JSON", lambda w: w.alice.call("POST", "/v1/datasets", raw=b'{"attestation": '), 400, "statement_format", "not valid JSON"),
    Case("not UTF-8", lambda w: _withdraw_a(w, raw=b'{"reason": "caf\xe9"}'), 400, "statement_format", "UTF-8"),
    Case("JSON array", lambda w: w.alice.call("POST", "/v1/datasets", raw=b"[]"), 400, "invalid_input", "JSON object"),
    Case("duplicate keys", lambda w: _withdraw_a(w, raw=b'{"reason": "a", "reason": "b"}'), 400, "statement_format", "duplicate"),
    Case("float", lambda w: _withdraw_a(w, raw=b'{"reason": 1.5}'), 400, "statement_format", "integer"),
    Case("deep nesting", lambda w: w.carol.call("POST", "/v1/requests", raw=b'{"request": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"), 400, "statement_format"),
    Case("unknown field", lambda w: _withdraw_a(w, body={"reason": "x", "also": 1}), 400, "invalid_input", "unknown field"),
    Case("wrong field type", lambda w: _withdraw_a(w, body={"reason": 7}), 400, "invalid_input", "reason"),
    Case("envelope not an object", lambda w: w.carol.call("POST", "/v1/requests", {"request": "x"}), 400, "invalid_input", "envelope"),
    Case("JSON body over 1 MiB", lambda w: w.carol.call("POST", "/v1/requests", raw=b'{"request": "' + b"a" * MAX_JSON_BODY + b'"}'), 413, "body_too_large"),
    Case("sealed body over 64 MiB", _oversize_sealed, 413, "body_too_large"),
    Case("wrong content type", lambda w: _withdraw_a(w, body={"reason": "x"}, content_type="text/plain"), 415, "unsupported_media_type"),
    Case("empty sealed upload", lambda w: w.alice.call("PUT", f"/v1/requests/{w.rid}/inputs/{w.ds_a}", raw=b"", headers={"content-type": "application/octet-stream", "sealroom-enclave": UNKNOWN}), 400, "invalid_input", "empty"),
    Case("statement field over its limit", lambda w: _huge_field(w, 100 << 10), 400, "statement_format", "description"),
    Case("statement payload over its limit", lambda w: _huge_field(w, 300 << 10), 400, "statement_format", "exceeds"),
    # statements that do not verify
    Case("tampered envelope", _tampered, 400, "signature_invalid"),
    Case("someone else's attestation", _foreign_attestation, 400, "signature_invalid", "owner"),
    # unknown objects
    Case("unknown dataset", lambda w: w.http.get(f"/v1/datasets/{UNKNOWN}"), 404, "not_found"),
    Case("request on an unknown dataset", lambda w: _request_on(w, (w.ds_a, UNKNOWN)), 404, "not_found", UNKNOWN),
    Case("withdraw an unknown dataset", lambda w: w.alice.call("POST", f"/v1/datasets/{UNKNOWN}/withdraw", {"reason": "x"}), 404, "not_found"),
    Case("overlap with an unknown dataset", lambda w: w.carol.call("POST", "/v1/compute/keyword-overlap", {"dataset_a": w.ds_a, "dataset_b": UNKNOWN}), 404, "not_found"),
    Case("unknown request", lambda w: w.carol.call("GET", f"/v1/requests/{UNKNOWN}"), 404, "not_found"),
    Case("unknown route", lambda w: w.http.get("/v1/nope"), 404, "not_found"),
    # request signatures
    Case("no signature", lambda w: w.http.post(f"/v1/datasets/{w.ds_a}/withdraw", json={"reason": "x"}), 401, "unauthenticated"),
    Case("stale signature", lambda w: _headers_at(w, w.alice, "POST", f"/v1/datasets/{w.ds_a}/withdraw", b'{"reason":"x"}', T0 - 301), 401, "unauthenticated"),
    Case("future signature", lambda w: _headers_at(w, w.alice, "POST", f"/v1/datasets/{w.ds_a}/withdraw", b'{"reason":"x"}', T0 + 301), 401, "unauthenticated"),
    Case("signature over another body", _other_body, 401, "unauthenticated"),
    Case("unregistered signer", lambda w: Client(w.http, identity("nobody"), w.clock).call("POST", f"/v1/datasets/{w.ds_a}/withdraw", {"reason": "x"}), 401, "unauthenticated"),
    # approvals by non-owners
    Case("approval by an outsider", lambda w: _approve(w, w.dave, w.dave, w.ds_a), 404, "not_found"),
    Case("approval by the requester", lambda w: _approve(w, w.carol, w.carol, w.ds_a), 404, "not_found"),
    Case("approval of another owner's input", lambda w: _approve(w, w.bob, w.bob, w.ds_a), 404, "not_found"),
    Case("owner relays another's approval", lambda w: _approve(w, w.bob, w.alice, w.ds_a), 400, "signature_invalid", "approver"),
    Case("approval naming another request", lambda w: _approve(w, w.alice, w.alice, w.ds_a, rid=UNKNOWN), 400, "invalid_input", "another request"),
    Case("upload before approval", lambda w: w.alice.call("PUT", f"/v1/requests/{w.rid}/inputs/{w.ds_a}", raw=b"sealed", content_type="application/octet-stream", headers={"sealroom-enclave": UNKNOWN}), 409, "conflict", "approve"),
    Case("withdraw another's dataset", lambda w: w.dave.call("POST", f"/v1/datasets/{w.ds_a}/withdraw", {"reason": "x"}), 403, "policy_denied"),
    Case("withdraw another's request", lambda w: w.alice.call("POST", f"/v1/requests/{w.rid}/withdraw", {"reason": "x"}), 403, "policy_denied", "requester"),
    Case("withdraw an invisible request", lambda w: w.dave.call("POST", f"/v1/requests/{w.rid}/withdraw", {"reason": "x"}), 404, "not_found"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_api_bad_input_is_refused_and_changes_nothing(world: World, case: Case) -> None:
    before = snapshot(world)
    r = case.call(world)
    assert r.status_code == case.status, r.text
    assert r.headers.get("content-type", "application/json").startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == case.code, error
    assert error["message"]
    assert error["detail"]
    assert case.detail in error["detail"], error
    assert "Traceback" not in r.text
    assert snapshot(world) == before
    # Still serving: a valid signed call succeeds.
    ok = world.alice.call("GET", f"/v1/requests/{world.rid}")
    assert ok.status_code == 200, ok.text


def test_api_replayed_call_is_refused_once_accepted(world: World) -> None:
    env = _signed(attestation(world.alice.identity, title="replayed"), world.alice)
    body = json.dumps({"attestation": env, "policy": None}).encode()
    h = {
        **sign_request(
            world.alice.identity, method="POST", target="/v1/datasets", body=body, now=T0
        ),
        "content-type": "application/json",
    }
    first = world.http.post("/v1/datasets", content=body, headers=h)
    assert first.status_code == 201, first.text
    before = snapshot(world)
    again = world.http.post("/v1/datasets", content=body, headers=h)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "unauthenticated"
    assert "nonce" in again.json()["error"]["detail"]
    assert snapshot(world) == before
    # The same statement with a fresh signature is an idempotent repeat, not a second copy.
    fresh = world.alice.call("POST", "/v1/datasets", raw=body)
    assert fresh.status_code == 200
    assert snapshot(world) == before


def test_api_withdrawn_dataset_refuses_new_work(world: World) -> None:
    w = world
    ds = _publish(w.alice, "to be withdrawn")
    pending = _request_on(w, (ds, w.ds_b))
    assert pending.status_code == 201, pending.text
    rid = pending.json()["request"]

    r = w.alice.call("POST", f"/v1/datasets/{ds}/withdraw", {"reason": "retired"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "withdrawn"
    view = w.carol.call("GET", f"/v1/requests/{rid}").json()
    assert view["status"] == "rejected"
    assert "withdrawn" in view["status_reason"]

    before = snapshot(w)
    refused = {
        "new request": _request_on(w, (ds, w.ds_b)),
        "overlap draft": w.carol.call(
            "POST", "/v1/compute/keyword-overlap", {"dataset_a": ds, "dataset_b": w.ds_b}
        ),
        "withdraw again": w.alice.call("POST", f"/v1/datasets/{ds}/withdraw", {"reason": "x"}),
        "approve the rejected request": w.alice.call(
            "POST",
            f"/v1/requests/{rid}/approvals",
            {"approval": _signed(approval(w.alice.identity, rid, ds), w.alice)},
        ),
    }
    for what, resp in refused.items():
        assert resp.status_code == 409, (what, resp.text)
        assert resp.json()["error"]["code"] == "conflict", what
    assert snapshot(w) == before
    hits = w.http.get("/v1/search", params={"q": "withdrawn"}).json()["items"]
    assert ds not in {h["dataset"]["dataset"] for h in hits}
    assert w.http.get(f"/v1/datasets/{ds}").json()["status"] == "withdrawn"
    # Other work goes on.
    other = _publish(w.alice, "still active")
    assert _request_on(w, (other, w.ds_b)).status_code == 201
