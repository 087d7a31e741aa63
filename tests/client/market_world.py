"""Parties, data and the paid predict flow shared by the marketplace's SDK and CLI tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.crypto.keys import Identity
from sealroom.crypto.keystore import Keystore
from tests.client.client_world import now

PARAMS = {
    "layout": "join",
    "id_column": "id",
    "target": "GRADE",
    "features": ["GPA", "TUCE", "PSI"],
    "test_fraction": "0",
}
PRICE = 100


@dataclass(frozen=True)
class P:
    home: Path
    identity: Identity
    client: Client

    @property
    def id(self) -> str:
        return self.identity.party_id


def parties(url: str, root: Path, names: list[str]) -> dict[str, P]:
    out = {}
    for name in names:
        home = root / name
        identity = Keystore.create(home, name=name, unencrypted=True)
        client = Client(base_url=url, identity=identity)
        client.register_party(name)
        out[name] = P(home, identity, client)
    return out


def publish(p: P, path: Path, rules: dict[str, Any]) -> str:
    return flows.publish(
        p.client,
        p.identity,
        path,
        title=path.name,
        description="market test data",
        policy_rules=rules,
        now=now(),
        home=p.home,
    ).dataset


def approve_all(ps: list[P], request: str) -> None:
    for p in ps:
        done = flows.auto_approve(
            p.client, p.identity, home=p.home, allow_simulated=True, now=now()
        )
        assert all(d.action == "approved" for d in done if d.request == request), done


def predict(
    world: dict[str, P], worker: Any, user: str, artifact: str, rows: Path
) -> tuple[str, Any]:
    u = world[user]
    own = publish(
        u,
        rows,
        {
            "allow": [{"id": "predict"}],
            "auto_approve": [{"id": "predict"}],
            "requesters": [u.id],
            "k": 1,
        },
    )
    view = flows.request(
        u.client, u.identity, "predict", [artifact, own], {"id_column": "id"}, now=now()
    )
    assert view.status == "pending", view.status_reason
    assert view.recipients == (u.id,)
    approve_all([world["tina"], u], view.request)
    step = worker.step()
    assert step.outcome == "completed", step.reason
    got = flows.fetch_result(
        u.client,
        u.identity,
        view.request,
        u.home / "out" / view.request[7:19],
        home=u.home,
        allow_simulated=True,
    )
    return view.request, got.body
