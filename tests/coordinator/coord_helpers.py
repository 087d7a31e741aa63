"""A small world for coordinator service tests: parties, a dataset, an enclave."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine

from sealroom.attestation.pins import DEFAULT_MAX_EVIDENCE_AGE, EnclavePin
from sealroom.attestation.simulated import SimulatedEnclave, SimulationRoot
from sealroom.computations.base import Computation, PrivacyContext
from sealroom.computations.registry import Registry
from sealroom.coordinator.admission import AdmissionPolicy
from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.coordinator.service import Coordinator
from sealroom.crypto.keys import Identity, b64encode
from sealroom.enclave.keys import EnclaveKeys
from sealroom.statements import BudgetCharge, Envelope, Policy, sign_statement
from sealroom.wire import PublishDatasetBody
from tests.helpers import T0, attestation, identity, request


class CountParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = 5


class CountOutput(BaseModel):
    rows: int


def _run(inputs: Sequence[pa.Table], params: BaseModel, privacy: PrivacyContext) -> BaseModel:
    return CountOutput(rows=sum(t.num_rows for t in inputs))


def _computation(cid: str, names: tuple[str, ...], release: Any, klass: Any) -> Computation:
    return Computation(
        id=cid,
        version="1.0.0",
        summary="test only",
        privacy_class=klass,
        release=release,
        input_names=names,
        params=CountParams,
        output=CountOutput,
        run_fn=_run,
        modules=(sys.modules[__name__],),
    )


ROW_COUNT = _computation("row-count", ("a",), "requester", "aggregate")
PAIR = _computation("topic-overlap", ("a", "b"), "all-parties", "aggregate")
REVEAL = _computation("reveal", ("a",), "requester", "content")
REGISTRY = Registry([ROW_COUNT, PAIR, REVEAL])


@dataclass
class World:
    c: Coordinator
    keystore: CoordinatorKeystore
    owner: Identity
    requester: Identity
    stranger: Identity
    enclave: EnclaveKeys
    dataset: str

    def publish(
        self, owner: Identity, *, policy_rules: dict[str, Any] | None = None, **kw: Any
    ) -> str:
        policy = None
        if policy_rules is not None:
            pol = sign_statement(
                Policy(owner=owner.party_id, name="p", rules=policy_rules, created_at=T0), owner
            )
            kw["policy"] = pol.digest
            policy = pol.envelope
        att = sign_statement(attestation(owner, **kw), owner)
        body = PublishDatasetBody(attestation=att.envelope, policy=policy)
        return self.c.datasets.publish(body, caller=owner.party_id, now=T0).view.dataset

    def request(
        self,
        inputs: tuple[str, ...],
        *,
        computation: Computation = ROW_COUNT,
        nonce: int = 1,
        **kw: Any,
    ) -> str:
        fields: dict[str, Any] = {
            "computation": computation.ref(),
            "nonce": b64encode(bytes([nonce]) * 16),
        }
        fields.update(kw)
        req = sign_statement(request(self.requester, inputs, **fields), self.requester)
        view = self.c.requests.create(
            req.envelope, caller=self.requester.party_id, now=T0 + 10
        ).view
        return view.request

    def charge(
        self,
        rid: str,
        dataset: str | None = None,
        *,
        head: tuple[int, str | None] | None = None,
        epsilon: str = "0",
        signer: EnclaveKeys | None = None,
    ) -> Envelope:
        """A BudgetCharge by the enclave for ``rid`` on ``dataset`` (default: the world's),
        on the dataset's current head unless ``head`` (seq, prev) says otherwise."""
        keys = signer or self.enclave
        dataset = dataset or self.dataset
        if head is None:
            chain = self.c.ledgers.view(dataset, caller=keys.public.party_id).charges
            head = (len(chain), chain[-1].envelope.digest if chain else None)
        seq, prev = head
        charge = BudgetCharge(
            dataset=dataset,
            request=rid,
            requester=self.requester.party_id,
            epsilon=epsilon,
            delta="0",
            bits="0",
            seq=seq,
            prev=prev,
            enclave=keys.public.party_id,
            evidence=keys.evidence.digest,
            charged_at=T0 + 50,
        )
        return sign_statement(charge, keys.identity).envelope

    def register_enclave(self) -> str:
        env = self.enclave.evidence.envelope
        out = self.c.jobs.register_enclave(env, caller=env.signer.party_id, now=T0)
        return out.view.evidence


def make_world(
    engine: Engine,
    keystore: CoordinatorKeystore,
    registry: Registry = REGISTRY,
    *,
    max_evidence_age: int = DEFAULT_MAX_EVIDENCE_AGE,
) -> World:
    """The world; its coordinator admits the world's enclave root, evidence up to
    ``max_evidence_age`` old."""
    root = SimulationRoot.from_private_bytes(hashlib.sha256(b"sim-root").digest())
    c = Coordinator.open(
        engine=engine,
        registry=registry,
        keystore=keystore,
        log_origin="sealroom.test/log",
        admission=AdmissionPolicy(
            pin=EnclavePin(simulation_root=root.public_key, max_evidence_age=max_evidence_age)
        ),
    )
    enclave = EnclaveKeys.create_at_time(SimulatedEnclave(root), tee="simulated", now=T0)
    w = World(
        c=c,
        keystore=keystore,
        owner=identity("owner"),
        requester=identity("requester"),
        stranger=identity("stranger"),
        enclave=enclave,
        dataset="",
    )
    w.dataset = w.publish(w.owner)
    return w
