"""A small world for enclave job tests: parties, a simulated enclave, a test computation."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from sealroom.attestation.simulated import SimulatedEnclave, SimulationRoot
from sealroom.computations import Computation, PrivacyContext, Registry
from sealroom.crypto.commit import commit_table, iter_canonical
from sealroom.crypto.keys import Identity, PublicIdentity, b64encode
from sealroom.crypto.sealing import SealContext, seal
from sealroom.enclave.keys import EnclaveKeys
from sealroom.enclave.runner import JobMaterials
from sealroom.errors import InvalidInput
from sealroom.statements import (
    Approval,
    Column,
    CommitmentRef,
    ComputationRef,
    ComputationRequest,
    DatasetAttestation,
    Envelope,
    Policy,
    Signed,
    sign_statement,
)
from sealroom.statements.envelope import pae
from tests.helpers import T0, approval, attestation, identity, request

NOW = T0 + 120
CHUNK = 1024
SEAL_CHUNK = 256  # small, so a test input spans several sealed chunks

# --- the test computation ---------------------------------------------------------------------


class SharedTermsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    min_length: int = 3


class SharedTermsOutput(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    rows: list[int]
    shared_terms: list[str]


def _shared_terms(
    inputs: Sequence[pa.Table], params: BaseModel, privacy: PrivacyContext
) -> BaseModel:
    """Terms that occur in at least k_i rows of every input i (k from each owner's policy)."""
    assert isinstance(params, SharedTermsParams)
    per_input: list[set[str]] = []
    for table, k in zip(inputs, privacy.k, strict=True):
        if "text" not in table.column_names:
            raise InvalidInput("input has no text column")
        rows: Counter[str] = Counter()
        for text in table.column("text").to_pylist():
            if text.startswith("BAD:"):
                raise InvalidInput(f"cannot use row {text!r}")
            if text.startswith("CRASH:"):
                raise RuntimeError(f"bug on row {text!r}")
            rows.update({w for w in text.lower().split() if len(w) >= params.min_length})
        per_input.append({term for term, n in rows.items() if n >= k})
    shared = set.intersection(*per_input)
    return SharedTermsOutput(rows=[t.num_rows for t in inputs], shared_terms=sorted(shared))


def _computation(cid: str, release: Any, privacy_class: Any = "aggregate") -> Computation:
    return Computation(
        id=cid,
        version="1.0.0",
        summary="Terms common to both datasets, each above its owner's threshold.",
        privacy_class=privacy_class,
        release=release,
        input_names=("left", "right"),
        params=SharedTermsParams,
        output=SharedTermsOutput,
        run_fn=_shared_terms,
        modules=(sys.modules[__name__],),
    )


SHARED = _computation("shared-terms", "all-parties")
PRIVATE = _computation("shared-terms-private", "requester")
REGISTRY = Registry([SHARED, PRIVATE])

# --- parties and data -------------------------------------------------------------------------

ALICE_TEXTS = (
    "attestation quote verify",
    "attestation kms",
    "dstack attestation build",
    "kms rotate",
)
BOB_TEXTS = (
    "attestation in tdx",
    "kms keys",
    "attestation again",
    "kms and attestation",
    "attestation report",
    "attestation collateral",
)
ALICE_RULES: dict[str, Any] = {
    "allow": [{"id": "shared-terms"}, {"id": "shared-terms-private"}],
    "auto_approve": [{"id": "shared-terms"}],
    "k": 2,
}


def text_table(texts: Sequence[str]) -> pa.Table:
    return pa.table({"text": pa.array(list(texts), pa.string())})


@dataclass(frozen=True)
class World:
    alice: Identity = field(default_factory=lambda: identity("alice"))
    bob: Identity = field(default_factory=lambda: identity("bob"))
    carol: Identity = field(default_factory=lambda: identity("carol"))
    mallory: Identity = field(default_factory=lambda: identity("mallory"))
    root: SimulationRoot = field(
        default_factory=lambda: SimulationRoot.from_private_bytes(
            hashlib.sha256(b"enclave-test-root").digest()
        )
    )
    enclave: EnclaveKeys = field(init=False)

    def __post_init__(self) -> None:
        keys = EnclaveKeys.create_at_time(
            SimulatedEnclave(self.root), tee="simulated", now=T0 - 100
        )
        object.__setattr__(self, "enclave", keys)


WORLD = World()


def sign_policy(owner: Identity, rules: Mapping[str, Any], name: str = "default") -> Signed[Policy]:
    return sign_statement(
        Policy(owner=owner.party_id, name=name, rules=dict(rules), created_at=T0 - 1000), owner
    )


def attest(owner: Identity, table: pa.Table, policy: str | None) -> Signed[DatasetAttestation]:
    c = commit_table(table, chunk_size=CHUNK)
    ref = CommitmentRef(
        format="arrow-ipc-stream/v1",
        root=b64encode(c.root),
        length=c.length,
        rows=c.rows,
        chunk_size=c.chunk_size,
    )
    statement = attestation(
        owner,
        commitment=ref,
        row_count=c.rows,
        policy=policy,
        schema=(Column(name="text", type="string"),),
    )
    return sign_statement(statement, owner)


def forge(envelope: Envelope, signer: Identity) -> Envelope:
    """The same payload, validly signed by someone else."""
    return dataclasses.replace(
        envelope,
        signer=signer.public,
        signature=signer.sign(pae(envelope.type, envelope.version, envelope.payload)),
    )


def seal_input(
    table: pa.Table,
    request_digest: str,
    *,
    to: PublicIdentity | None = None,
    purpose: str = "input",
) -> bytes:
    recipient = to or WORLD.enclave.public
    data = b"".join(iter_canonical(table))
    context = SealContext(
        request_digest=bytes.fromhex(request_digest.removeprefix("sha256:")),
        recipient=recipient.party_id,
        purpose=purpose,
    )
    return seal(data, recipient, context, chunk_size=SEAL_CHUNK)


@dataclass(frozen=True)
class Case:
    """One job as the coordinator would hand it over, plus the parts to break it with."""

    computation: Computation
    request: Signed[ComputationRequest]
    attestations: tuple[Signed[DatasetAttestation], ...]
    policies: tuple[Signed[Policy], ...]
    approvals: tuple[Signed[Approval], ...]
    tables: tuple[pa.Table, ...]
    sealed: dict[str, bytes]

    def materials(self, **changes: Any) -> JobMaterials:
        fields: dict[str, Any] = {
            "request": self.request.envelope,
            "approvals": tuple(a.envelope for a in self.approvals),
            "attestations": tuple(a.envelope for a in self.attestations),
            "policies": tuple(p.envelope for p in self.policies),
            "sealed_inputs": self.sealed,
        }
        fields.update(changes)
        return JobMaterials(**fields)

    def approve(self, index: int, signer: Identity | None = None, **overrides: Any) -> Envelope:
        owner = (WORLD.alice, WORLD.bob)[index]
        who = signer or owner
        dataset = overrides.pop("dataset", self.attestations[index].digest)
        return sign_statement(
            approval(who, self.request.digest, dataset, **overrides), who
        ).envelope


def build_case(
    *,
    computation: Computation = SHARED,
    computation_ref: ComputationRef | None = None,
    alice_rules: Mapping[str, Any] | None = ALICE_RULES,
    alice_texts: Sequence[str] = ALICE_TEXTS,
    bob_texts: Sequence[str] = BOB_TEXTS,
    recipients: Sequence[Identity] | None = None,
    alice_mode: str = "policy",
    **request_overrides: Any,
) -> Case:
    """Alice (with a policy unless ``alice_rules`` is None) and Bob (no policy) share with Carol."""
    w = WORLD
    policies = (sign_policy(w.alice, alice_rules),) if alice_rules is not None else ()
    tables = (text_table(alice_texts), text_table(bob_texts))
    atts = (
        attest(w.alice, tables[0], policies[0].digest if policies else None),
        attest(w.bob, tables[1], None),
    )
    if recipients is None:
        recipients = (w.carol,) if computation.release == "requester" else (w.carol, w.alice, w.bob)
    fields: dict[str, Any] = {
        "computation": computation_ref or computation.ref(),
        "parameters": {"min_length": 3},
        "recipients": tuple(r.party_id for r in recipients),
    }
    fields.update(request_overrides)
    req = sign_statement(request(w.carol, tuple(a.digest for a in atts), **fields), w.carol)
    alice_approval: dict[str, Any] = {"mode": alice_mode}
    if alice_mode == "policy":
        alice_approval["policy"] = policies[0].digest if policies else None
    approvals = (
        sign_statement(approval(w.alice, req.digest, atts[0].digest, **alice_approval), w.alice),
        sign_statement(approval(w.bob, req.digest, atts[1].digest), w.bob),
    )
    sealed: dict[str, bytes] = {
        a.digest: seal_input(t, req.digest) for a, t in zip(atts, tables, strict=True)
    }
    return Case(
        computation=computation,
        request=req,
        attestations=atts,
        policies=policies,
        approvals=approvals,
        tables=tables,
        sealed=sealed,
    )
