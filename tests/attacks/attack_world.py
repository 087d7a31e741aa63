"""The attacker's world for issue 11's end-to-end attacks: a real coordinator, an enclave, the SDK.

A real coordinator (the app ``sealroom serve`` runs, uvicorn on loopback) and a
simulated enclave worker with its own state (budget ledger, release history) serve
every request. Parties are created on first use, so an attack can register as many
identities as it likes. Owners decide as their clients would: an owner whose policy
approves automatically approves through its inbox (``flows.auto_approve``); a
content-class or unlisted request is approved by hand only when the test says a
person did. The attacker's results are fetched and verified by the SDK
(``flows.fetch_result``: receipt, evidence, log inclusion).

Every victim in these tests is a fresh party: the release history's scope is the
owner and its entity column, so one test's releases never meet another's.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.crypto.keys import Identity
from sealroom.crypto.keystore import Keystore
from sealroom.enclave.state import EnclaveState
from sealroom.enclave.worker import (
    EnclaveWorker,
    JobSource,
    make_enclave_keys,
    make_evidence_provider,
)
from tests.client.client_world import now
from tests.services import SIMULATION_ROOT, coordinator


@dataclass(frozen=True)
class Party:
    name: str
    home: Path
    identity: Identity
    client: Client


@dataclass(frozen=True)
class Answer:
    """What the requester got: a verified result body, or a refusal and where it happened."""

    body: Any = None
    refused: str | None = None
    where: str | None = None  # "coordinator" (pre-check) or "enclave"

    def refused_by(self, rule: str) -> str | None:
        """Assert a refusal naming ``rule``; where it happened."""
        assert self.refused is not None, f"released: {self.body}"
        assert rule in self.refused, self.refused
        return self.where

    @property
    def released(self) -> Any:
        assert self.refused is None, f"refused at the {self.where}: {self.refused}"
        return self.body


@dataclass
class World:
    url: str
    root: Path
    worker: EnclaveWorker
    parties: dict[str, Party] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # dataset -> owner name

    def party(self, name: str) -> Party:
        """The party ``name``, registered with the coordinator on first use (identities are free)."""
        if name not in self.parties:
            home = self.root / "parties" / name
            identity = Keystore.create(home, name=name, unencrypted=True)
            client = Client(base_url=self.url, identity=identity)
            client.register_party(name)
            self.parties[name] = Party(name, home, identity, client)
        return self.parties[name]

    def publish(self, owner: str, path: Path, rules: Mapping[str, Any] | None) -> str:
        p = self.party(owner)
        dataset = flows.publish(
            p.client,
            p.identity,
            path,
            title=path.stem,
            description="",
            policy_rules=rules,
            now=now(),
            home=p.home,
        ).dataset
        self.owners[dataset] = owner
        return dataset

    def ask(
        self,
        requester: str,
        computation: str,
        datasets: Sequence[str],
        params: Mapping[str, Any],
        *,
        by_hand: Sequence[str] = (),
    ) -> Answer:
        """``requester`` asks; every owner's inbox approves what its policy approves (owners in
        ``by_hand`` approve by hand); the enclave runs the job; the verified answer."""
        asker = self.party(requester)
        view = flows.request(
            asker.client, asker.identity, computation, list(datasets), params, now=now()
        )
        if view.status == "rejected":
            return Answer(refused=view.status_reason, where="coordinator")
        for owner in dict.fromkeys(self.owners[d] for d in datasets):
            p = self.party(owner)
            if owner in by_hand or owner == requester:
                flows.approve(
                    p.client, p.identity, view.request, home=p.home, allow_simulated=True, now=now()
                )
            else:
                flows.auto_approve(
                    p.client, p.identity, home=p.home, allow_simulated=True, now=now()
                )
        status = flows.status(asker.client, view.request).status
        assert status == "approved", f"{computation}: the owners left the request {status}"
        step = self.worker.step()
        assert step.request == view.request
        if step.outcome != "completed":
            return Answer(refused=step.reason, where="enclave")
        result = flows.fetch_result(
            asker.client,
            asker.identity,
            view.request,
            self.root / "out" / view.request[7:23],
            home=asker.home,
            allow_simulated=True,
        )
        assert result.report.failures == ()
        return Answer(body=result.body)


@dataclass(frozen=True)
class Folder:
    """Where one test writes the files its parties publish."""

    path: Path

    def csv(self, name: str, rows: Sequence[Mapping[str, Any]]) -> Path:
        target = self.path / f"{name}.csv"
        with target.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return target

    def jsonl(self, name: str, rows: Sequence[Mapping[str, Any]]) -> Path:
        target = self.path / f"{name}.jsonl"
        target.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return target


@contextmanager
def attack_world(
    root: Path, *, wrap: Callable[[JobSource], JobSource] | None = None
) -> Iterator[World]:
    """A coordinator on loopback and a registered enclave (stepped by :meth:`World.ask`);
    ``wrap`` puts something between the enclave and the coordinator (a hostile operator)."""
    with coordinator(root) as url:
        provider = make_evidence_provider(simulation_root=SIMULATION_ROOT)
        keys = make_enclave_keys(now=now(), provider=provider)
        source: JobSource = Client(base_url=url, identity=keys.identity)
        state = EnclaveState.create_temporary()
        worker = EnclaveWorker(
            source=wrap(source) if wrap else source, keys=keys, state=state, provider=provider
        )
        worker.register()
        world = World(url=url, root=root, worker=worker)
        try:
            yield world
        finally:
            for p in world.parties.values():
                p.client.close()
            state.close()


def auto(computation: str, **rules: Any) -> dict[str, Any]:
    """A README-style policy: ``computation`` allowed and approved automatically, with the
    new defaults (DP required for a parametrised computation) unless ``rules`` say more."""
    return {"allow": [{"id": computation}], "auto_approve": [{"id": computation}], **rules}


def more_than_half_below(n: int, p_below: float) -> float:
    """The probability that more than half of ``n`` independent draws fall below a value
    that each falls below with probability at most ``p_below`` (a binomial tail)."""
    need = n // 2 + 1
    return sum(math.comb(n, i) * p_below**i * (1 - p_below) ** (n - i) for i in range(need, n + 1))
