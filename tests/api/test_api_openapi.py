"""/openapi.json documents every route of docs/http-api.md, every body, and the real shapes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealroom import wire
from sealroom.api.app import create_app
from sealroom.api.testing import run_in_thread
from sealroom.statements import sign_statement
from tests.api.api_helpers import Client, Clock, test_registry
from tests.helpers import T0, attestation, identity

DOC = Path(__file__).resolve().parents[2] / "docs" / "http-api.md"
_ROUTE = re.compile(r"^- `(GET|POST|PUT|DELETE) (/v1/[^`?\s]+|/healthz|/readyz)")
_PARAM = re.compile(r"\{[^}]+\}")
KEYS_FROM_BODY = {"/v1/parties", "/v1/enclaves"}  # the signer's keys come from the body itself
NO_BODY = {
    ("post", "/v1/jobs/claim"),
    ("post", "/v1/jobs/{rid}/lease"),
    ("post", "/v1/uploads/{upload}/complete"),
}
PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/v1/health"),
    ("get", "/v1/computations"),
    ("get", "/v1/parties/{party}"),
    ("get", "/v1/log/checkpoint"),
    ("get", "/v1/log/key"),
    ("get", "/v1/log/entries/{index}"),
    ("get", "/v1/log/inclusion"),
    ("get", "/v1/log/consistency"),
    ("get", "/v1/policies/{digest}"),
    ("get", "/v1/datasets"),
    ("get", "/v1/datasets/{dataset}"),
    ("get", "/v1/search"),
    ("get", "/v1/enclaves"),
    ("get", "/v1/credits/ledger"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{model}"),
    ("get", "/v1/models/{model}/evaluations"),
    ("get", "/v1/portfolios"),
    ("get", "/v1/portfolios/{portfolio}"),
    ("get", "/v1/market/arbiter"),
    ("get", "/v1/reputation/{party}"),
}
"""The routes docs/http-api.md marks public: no request signature."""


def _norm(path: str) -> str:
    return _PARAM.sub("{}", path)


def documented_routes() -> set[tuple[str, str]]:
    routes = set()
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = _ROUTE.match(line)
        if m:
            routes.add((m.group(1).lower(), _norm(m.group(2))))
    return routes


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Clock]]:
    clock = Clock(T0)
    db = tmp_path_factory.mktemp("openapi") / "c.db"
    app = create_app(db_url=f"sqlite:///{db}", registry=test_registry(), clock=clock)
    with run_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http, clock


@pytest.fixture(scope="module")
def spec(served: tuple[httpx.Client, Clock]) -> dict[str, Any]:
    http, _ = served
    r = http.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    value: dict[str, Any] = json.loads(r.content)  # valid JSON, strictly
    return value


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in {"get", "post", "put", "delete", "patch"}:
                yield method, path, op


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from _refs(v)


def _component(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    prefix = "#/components/schemas/"
    assert ref.startswith(prefix), ref
    found: dict[str, Any] = spec["components"]["schemas"][ref.removeprefix(prefix)]
    return found


def test_openapi_paths_are_exactly_the_documented_routes(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    assert spec["info"]["title"]
    documented = documented_routes()
    assert len(documented) >= 30  # the parser found the route list
    served = {(m, _norm(p)) for m, p, _ in _operations(spec)}
    assert served == documented


def test_openapi_every_mutating_route_documents_its_body(spec: dict[str, Any]) -> None:
    for method, path, op in _operations(spec):
        if method not in {"post", "put"}:
            continue
        if (method, path) in NO_BODY:
            assert "requestBody" not in op
            assert "empty" in op["description"]
            continue
        body = op.get("requestBody")
        assert body is not None, f"{method.upper()} {path} documents no body"
        assert body["required"] is True
        (media, content), *rest = body["content"].items()
        assert not rest
        if media == "application/octet-stream":
            assert content["schema"] == {"type": "string", "format": "binary", "minLength": 1}
            params = {(p["in"], p["name"]) for p in op["parameters"]}
            # Bound to an enclave by a header, to a peer by a query, or (an upload's part) to
            # the size and digest its upload declared for that index.
            assert (
                ("header", "Sealroom-Enclave") in params
                or ("query", "to") in params
                or ("path", "index") in params
            )
            continue
        assert media == "application/json"
        model = _component(spec, content["schema"]["$ref"])
        assert model["type"] == "object"
        assert model["properties"]
        assert model["additionalProperties"] is False


def test_openapi_refs_resolve_and_responses_are_typed(spec: dict[str, Any]) -> None:
    for ref in set(_refs(spec)):
        assert isinstance(_component(spec, ref), dict)
    names = set(spec["components"]["schemas"])
    assert "HTTPValidationError" not in names  # no 422s: bad input is a 400 with ErrorBody
    for method, path, op in _operations(spec):
        statuses = set(op["responses"])
        assert "422" not in statuses, (method, path)
        assert op["responses"]["4XX"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
        ok = [s for s in statuses if s.startswith("2")]
        assert ok, (method, path)
        if path == "/v1/log/checkpoint":
            assert "text/plain" in op["responses"]["200"]["content"]
            continue
        for status in ok:
            if status == "204":
                continue
            assert op["responses"][status]["content"], (method, path, status)
        signed = "security" in op
        assert signed == ((method, path) not in PUBLIC), (method, path)


def test_openapi_bodies_match_what_the_server_requires(
    spec: dict[str, Any], served: tuple[httpx.Client, Clock]
) -> None:
    """The documented required fields are the ones the server asks for, and no others."""
    http, clock = served
    alice = Client(http, identity("alice"), clock)
    assert alice.register("alice").status_code in (200, 201)
    fake = "sha256:" + "1" * 64
    checked = 0
    for method, path, op in _operations(spec):
        content = op.get("requestBody", {}).get("content", {})
        if "application/json" not in content or path in KEYS_FROM_BODY:
            continue
        model = _component(spec, content["application/json"]["schema"]["$ref"])
        target = _PARAM.sub(fake, path)
        r = alice.call(method.upper(), target, {})
        assert r.status_code == 400, (path, r.text)
        missing = re.search(r"missing field\(s\) (\[.*\])", r.json()["error"]["detail"])
        assert missing is not None, (path, r.text)
        assert sorted(json.loads(missing.group(1).replace("'", '"'))) == sorted(model["required"])
        r = alice.call(method.upper(), target, {"zz_not_documented": 1})
        assert "unknown field(s) ['zz_not_documented']" in r.json()["error"]["detail"]
        checked += 1
    assert checked == 32  # + the deletion, the release keys, the chunked uploads, and the
    # marketplace: models, evaluations, reviews, portfolios, pledges, disputes, resolutions;
    # credits: transfers, quote, offers, accepts, liveness; the rooms: room, invitation,
    # join, consent, run approval, organisation member; and protocol runs' receipts


def test_openapi_response_models_are_exactly_the_real_responses(
    served: tuple[httpx.Client, Clock],
) -> None:
    """The server's models forbid unknown fields: a real response parses with nothing left over."""
    http, clock = served

    def exact(model: type[wire.WireModel], response: httpx.Response) -> Any:
        return model.model_validate_json(response.content, strict=True)

    bob = Client(http, identity("bob-openapi"), clock)
    exact(wire.PartyView, bob.register("bob"))
    att = sign_statement(attestation(bob.identity, title="openapi shapes"), bob.identity)
    body = {"attestation": att.envelope.to_dict(), "policy": None}
    published = bob.call("POST", "/v1/datasets", body)
    assert published.status_code == 201, published.text
    exact(wire.PublishedDataset, published)
    again = bob.call("POST", "/v1/datasets", body)
    assert again.status_code == 200  # documented: the stored view, nothing duplicated
    assert exact(wire.PublishedDataset, again).dataset == att.digest
    exact(wire.Health, http.get("/v1/health"))
    exact(wire.Health, http.get("/healthz"))
    exact(wire.Readiness, http.get("/readyz"))
    exact(wire.ComputationList, http.get("/v1/computations"))
    exact(wire.DatasetPage, http.get("/v1/datasets"))
    page = exact(wire.SearchPage, http.get("/v1/search", params={"q": "shapes"}))
    assert page.total == 1
    exact(wire.ErrorBody, http.get(f"/v1/datasets/{'sha256:' + '0' * 64}"))
    exact(wire.LogKey, http.get("/v1/log/key"))
    exact(wire.RequestList, bob.call("GET", "/v1/inbox"))


def test_openapi_documents_the_200_of_a_repeated_publication(spec: dict[str, Any]) -> None:
    for path in ("/v1/parties", "/v1/policies", "/v1/datasets", "/v1/requests", "/v1/enclaves"):
        responses = spec["paths"][path]["post"]["responses"]
        assert {"200", "201"} <= set(responses), path
        assert responses["200"]["content"] == responses["201"]["content"], path


def test_a_method_a_path_does_not_take_is_405_with_allow(
    served: tuple[httpx.Client, Clock],
) -> None:
    http, _ = served
    r = http.request("DELETE", "/v1/datasets")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"
    assert r.json()["error"]["code"] == "invalid_input"
    r = http.request("PATCH", f"/v1/sessions/{'ab' * 16}/messages")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"
