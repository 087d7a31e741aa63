"""Issue 11, classes 9-11, end to end: the SDK as the attacker against a real coordinator.

A real coordinator (uvicorn on loopback) and a simulated enclave worker with its own
state (budget ledger and release history) run every request. The attacker registers,
publishes its own data where the attack needs it, asks through the SDK, and reads
what the enclave releases to it; the victims approve as their policies (or a person,
for content) would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.crypto.keys import Identity
from sealroom.crypto.keystore import Keystore
from sealroom.enclave.state import EnclaveState
from sealroom.enclave.worker import EnclaveWorker, make_enclave_keys
from sealroom.statements import DatasetAttestation
from tests.client.client_world import now
from tests.connectors.clinic_notes import write_clinic_notes
from tests.services import coordinator


@dataclass(frozen=True)
class Party:
    home: Path
    identity: Identity
    client: Client


@dataclass(frozen=True)
class World:
    url: str
    root: Path
    parties: Mapping[str, Party]
    worker: EnclaveWorker


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("text-attacks")
    with coordinator(root) as url:
        parties = {}
        for name in ("victim", "attacker"):
            identity = Keystore.create(root / name, name=name, unencrypted=True)
            client = Client(base_url=url, identity=identity)
            client.register_party(name)
            parties[name] = Party(root / name, identity, client)
        keys = make_enclave_keys(now=now())
        worker = EnclaveWorker(
            source=Client(base_url=url, identity=keys.identity),
            keys=keys,
            state=EnclaveState.create_temporary(),
        )
        worker.register()
        try:
            yield World(url, root, parties, worker)
        finally:
            for p in parties.values():
                p.client.close()


def jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def publish(world: World, who: str, path: Path, rules: Mapping[str, Any] | None) -> str:
    p = world.parties[who]
    return flows.publish(
        p.client,
        p.identity,
        path,
        title=path.stem,
        description="",
        policy_rules=rules,
        now=now(),
        home=p.home,
    ).dataset


def ask(
    world: World,
    computation: str,
    datasets: Sequence[str],
    params: Mapping[str, Any],
    owners: Sequence[str] = ("victim",),
) -> Any:
    """The attacker requests; each owner approves (by policy, or by hand for content); the
    enclave runs the job; the attacker's verified result body, or the refusal's reason."""
    attacker = world.parties["attacker"]
    view = flows.request(
        attacker.client, attacker.identity, computation, list(datasets), params, now=now()
    )
    for p in (world.parties[o] for o in owners):
        flows.approve(
            p.client, p.identity, view.request, home=p.home, allow_simulated=True, now=now()
        )
    step = world.worker.step()
    if step.outcome != "completed":
        return {"refused": step.reason}
    result = flows.fetch_result(
        attacker.client,
        attacker.identity,
        view.request,
        world.root / "out" / view.request[7:19],
        home=attacker.home,
        allow_simulated=True,
    )
    return result.body


def test_class_10_topic_overlap_counts_modules_not_records(world: World, tmp_path: Path) -> None:
    """27 records name the term, in 2 modules; k = 5 on the module."""
    rows = [{"text": "worked on patientzero diagnosis", "module": f"m{i % 2}"} for i in range(27)]
    rows += [{"text": f"reviewed the build pipeline {i}", "module": f"f{i}"} for i in range(60)]
    victim = publish(
        world,
        "victim",
        jsonl(tmp_path / "modules.jsonl", rows),
        {
            "allow": [{"id": "topic-overlap"}],
            "auto_approve": [{"id": "topic-overlap"}],
            "k": 5,
            "entity_column": "module",
        },
    )
    probe = jsonl(tmp_path / "probe.jsonl", [{"text": "patientzero diagnosis"}] * 5)
    mine = publish(world, "attacker", probe, {"allow": [{"id": "topic-overlap"}], "k": 1})
    body = ask(world, "topic-overlap", [victim, mine], {"top": 200}, ("victim", "attacker"))
    named_as_victims = {s["term"] for s in body["shared"]} | {
        t["term"] for t in body["unique_to_a"]
    }
    assert "build pipeline" in named_as_victims
    assert not any("patientzero" in t for t in named_as_victims)


def test_class_9_query_extension_learns_nothing_and_differencing_is_refused(
    world: World, tmp_path: Path
) -> None:
    rows = [
        {"text": "Login failed on staging; the password is hunter2. Fixed by resetting the vault."}
    ] * 6 + [{"text": "Login failed on staging; the vault was sealed."}]
    victim = publish(
        world, "victim", jsonl(tmp_path / "log.jsonl", rows), {"allow": [{"id": "pattern-search"}]}
    )
    answers = [
        ask(world, "pattern-search", [victim], {"query": "the password is " + prefix})
        for prefix in ("h", "hu", "hunter2", "x")
    ]
    assert all(a["matched"] == 0 and a["patterns"] == [] for a in answers)
    assert "hunter2" not in json.dumps(ask(world, "pattern-search", [victim], {"query": "login"}))
    # Two queries whose matches differ by one record: the second is refused by the enclave's
    # difference check (its counts would stand on nearly the same entities as the first's).
    first = ask(world, "pattern-search", [victim], {"query": "login failed on staging"})
    assert first["matched"] == 5  # 7 records, rounded down to a multiple of k = 5
    second = ask(world, "pattern-search", [victim], {"query": "the password is"})
    assert "difference-check" in second["refused"]


def test_class_11_the_public_card_obeys_k_in_entities(world: World, tmp_path: Path) -> None:
    notes = write_clinic_notes(tmp_path / "notes.jsonl")
    rules = {"allow": [{"id": "topic-overlap"}], "k": 50}
    victim = world.parties["victim"]
    card = flows.CardOptions(text_column="note")
    preview = flows.preview_card(notes, policy_rules=rules, card=card)
    dataset = flows.publish(
        victim.client,
        victim.identity,
        notes,
        title="clinic notes",
        description="",
        policy_rules=rules,
        now=now(),
        home=victim.home,
        card=card,
    ).dataset
    # What anyone reads from the log, forever:
    served = Client(base_url=world.url).dataset(dataset).envelope.open(DatasetAttestation)
    body = served.statement.model_dump_json().lower()
    assert not any(w in body for w in ("zebulon", "quixote", "leukaemia"))
    assert all((kw.count or 0) >= 50 for kw in served.statement.keywords)
    assert [kw.model_dump() for kw in served.statement.keywords] == preview.fields["keywords"]
