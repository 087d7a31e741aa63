from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sealroom.api.app import create_app
from sealroom.api.testing import run_in_thread
from sealroom.statements import sign_statement
from tests.api.api_helpers import Client, Clock, test_registry
from tests.helpers import T0, attestation, identity


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Clock]]:
    clock = Clock(T0)
    app = create_app(db_url=f"sqlite:///{tmp_path / 'c.db'}", registry=test_registry(), clock=clock)
    with run_in_thread(app) as url:
        yield url, clock


def test_api_health_and_publish(server: tuple[str, Clock]) -> None:
    url, clock = server
    with httpx.Client(base_url=url) as http:
        assert http.get("/v1/health").json()["status"] == "ok"
        alice = Client(http, identity("alice"), clock)
        r = alice.register("alice")
        assert r.status_code == 201, r.text
        att = sign_statement(attestation(alice.identity), alice.identity)
        r = alice.call(
            "POST", "/v1/datasets", {"attestation": att.envelope.to_dict(), "policy": None}
        )
        assert r.status_code == 201, r.text
        assert r.json()["dataset"] == att.digest
        r = http.get("/v1/search", params={"q": "attestation"})
        assert r.status_code == 200, r.text
        assert r.json()["total"] == 1
