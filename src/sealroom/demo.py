"""``sealroom demo``: the trust core end to end, on embedded data, with every role played locally.

An owner commits to a dataset and signs an attestation; a requester asks for a
thresholded topic count; the owner verifies the (simulated) enclave's evidence,
approves and seals the data to it; the enclave opens the data, checks it
against the commitment, computes, seals the result to the requester and signs
a receipt; every statement goes into a transparency log; the proof bundle is
then verified offline, and a one-byte tamper is shown to fail.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from sealroom.attestation.simulated import SimulatedEnclave, SimulatedVerifier, SimulationRoot
from sealroom.crypto.commit import DatasetCommitment, canonical_bytes, commit_table, read_verified
from sealroom.crypto.keys import Identity, b64encode
from sealroom.crypto.keystore import Keystore
from sealroom.crypto.sealing import SealContext, open_sealed, seal
from sealroom.enclave.keys import EnclaveKeys
from sealroom.enclave.receipts import issue_receipt
from sealroom.statements import (
    Approval,
    CommitmentRef,
    ComputationRef,
    ComputationRequest,
    DatasetAttestation,
    Envelope,
    Keyword,
    ReleasedOutput,
    TimeRange,
    canonical_json,
    sign_statement,
)
from sealroom.transparency.checkpoint import NoteSigner
from sealroom.transparency.log import TransparencyLog
from sealroom.transparency.sqlstore import SqlLogStore, sqlite_engine
from sealroom.verification.assemble import assemble_bundle
from sealroom.verification.bundle import ProofBundle
from sealroom.verification.trust import trust_policy
from sealroom.verification.verify import BundleRejected, VerificationReport, verify_bundle

__all__ = ["run_demo"]

Echo = Callable[[str], None]

TOPICS = (
    "remote attestation",
    "reproducible builds",
    "tls in tee",
    "on-chain authorization",
    "kms and secrets",
    "production debugging",
    "sgx legacy",
)
DAY = 86_400


def _dataset(seed: int, rows: int, start: int) -> pa.Table:
    """A synthetic work log: one record per note, skewed towards a few topics."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not a secret
    weights = [30, 22, 15, 12, 10, 8, 3]
    topics = rng.choices(TOPICS, weights=weights, k=rows)
    days = sorted(rng.randrange(0, 90) for _ in range(rows))
    return pa.table(
        {
            "ts": pa.array([start + d * DAY + rng.randrange(DAY) for d in days], pa.int64()),
            "project": pa.array([rng.choice(("dstack", "kms", "gateway")) for _ in range(rows)]),
            "topic": pa.array(topics),
            "text": pa.array([f"note {i}: worked on {t}" for i, t in enumerate(topics)]),
        }
    )


def topic_counts(table: pa.Table, k: int) -> dict[str, object]:
    """The computation: records per topic, releasing only topics seen in at least k records."""
    counts = Counter(table.column("topic").to_pylist())
    released = {t: n for t, n in sorted(counts.items()) if n >= k}
    return {
        "topics": released,
        "suppressed_topics": len(counts) - len(released),
        "threshold_k": k,
    }


CODE_DIGEST = "sha256:" + hashlib.sha256(inspect.getsource(topic_counts).encode()).hexdigest()


def _commitment_ref(c: DatasetCommitment) -> CommitmentRef:
    return CommitmentRef(
        format="arrow-ipc-stream/v1",
        root=b64encode(c.root),
        length=c.length,
        rows=c.rows,
        chunk_size=c.chunk_size,
    )


def _party(home: Path, name: str) -> Identity:
    return Keystore.create(home, name=name)


def run_demo(workdir: Path | None, *, echo: Echo) -> int:
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="sealroom-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        echo(f"error: {workdir} is not empty; the demo writes fresh keys and files there")
        return 2
    now = int(time.time())
    echo(f"sealroom demo: files in {workdir}\n")

    # --- parties -----------------------------------------------------------------------
    owner = _party(workdir / "amiller", "amiller")
    requester = _party(workdir / "cloudmolty", "CloudMolty")
    echo(f"owner      amiller     {owner.party_id}")
    echo(f"requester  CloudMolty  {requester.party_id}")

    # --- publish -----------------------------------------------------------------------
    table = _dataset(seed=2026, rows=600, start=now - 90 * DAY)
    commitment = commit_table(table)
    counts = Counter(table.column("topic").to_pylist())
    attestation = sign_statement(
        DatasetAttestation.model_validate(
            {
                "owner": owner.party_id,
                "title": "TEE development work log",
                "description": "Notes from building on dstack: attestation, builds, KMS.",
                "keywords": tuple(Keyword(term=t, count=n) for t, n in counts.most_common(5)),
                "topics": ("tee", "dstack"),
                "schema": tuple({"name": f.name, "type": str(f.type)} for f in table.schema),
                "row_count": table.num_rows,
                "time_range": TimeRange(
                    start=min(table.column("ts").to_pylist()),
                    end=max(table.column("ts").to_pylist()),
                ),
                "profile": {
                    "projects": 3,
                    "active_days": None,
                    "primary_focus": counts.most_common(1)[0][0],
                    "expertise": tuple(t for t, _ in counts.most_common(3)),
                },
                "commitment": _commitment_ref(commitment),
                "policy": None,
                "created_at": now,
            }
        ),
        owner,
    )
    echo(f"\n1. amiller publishes dataset {attestation.digest}")
    echo(
        f"   {commitment.rows} rows, {commitment.length} canonical bytes, Merkle root "
        f"{commitment.root.hex()[:16]}..."
    )

    # --- the enclave -------------------------------------------------------------------
    root = SimulationRoot.generate()
    enclave = EnclaveKeys.create_at_time(SimulatedEnclave(root), tee="simulated", now=now)
    echo("\n2. the mediator enclave starts and publishes its key evidence")
    echo("   !! SIMULATED ENCLAVE: a software stand-in for Intel TDX; it protects nothing !!")

    # --- request -----------------------------------------------------------------------
    request = sign_statement(
        ComputationRequest(
            requester=requester.party_id,
            computation=ComputationRef(id="topic-counts", version="1.0.0", code_digest=CODE_DIGEST),
            parameters={"k": 20},
            inputs=(attestation.digest,),
            recipients=(requester.party_id,),
            nonce=b64encode(os.urandom(16)),
            created_at=now,
            expires_at=now + DAY,
        ),
        requester,
    )
    echo(f"\n3. CloudMolty requests topic-counts (k=20): {request.digest}")

    # --- approve and seal ---------------------------------------------------------------
    # The owner checks the enclave's evidence before sealing anything to it.
    SimulatedVerifier(root.public_key, allow_simulated=True).verify_at_time(
        enclave.evidence.statement.tee_evidence(),
        key_document=enclave.evidence.statement.keys.canonical_bytes(),
        at_time=now,
    )
    approval = sign_statement(
        Approval(
            request=request.digest,
            dataset=attestation.digest,
            approver=owner.party_id,
            decision="approve",
            mode="manual",
            policy=None,
            reason="aggregate counts with k=20 are fine",
            conditions=(),
            created_at=now,
        ),
        owner,
    )
    request_id = bytes.fromhex(request.digest.removeprefix("sha256:"))
    sealed_input = seal(
        canonical_bytes(table),
        enclave.public,
        SealContext(request_digest=request_id, recipient=enclave.public.party_id, purpose="input"),
    )
    echo("\n4. amiller verifies the enclave evidence (simulation explicitly allowed), approves,")
    echo(f"   and seals {len(sealed_input)} bytes to the enclave key (HPKE + AES-256-GCM STREAM)")

    # --- run inside the enclave ----------------------------------------------------------
    received = {e.digest: e for e in (attestation.envelope, request.envelope, approval.envelope)}
    req = received[request.digest].open(ComputationRequest)
    att = received[attestation.digest].open(DatasetAttestation)
    appr = received[approval.digest].open(Approval)
    plaintext = open_sealed(
        sealed_input,
        enclave.identity,
        SealContext(request_digest=request_id, recipient=enclave.public.party_id, purpose="input"),
    )
    data = read_verified(plaintext, commitment)
    result = canonical_json(topic_counts(data, k=int(req.statement.parameters["k"])))
    del plaintext, data
    receipt, released = issue_receipt(
        enclave,
        request=req,
        approvals=[appr],
        attestations=[att],
        outputs={requester.party_id: result},
        issued_at=now,
    )
    sealed_result = seal(
        released[requester.party_id].to_json(),
        requester.public,
        SealContext(request_digest=request_id, recipient=requester.party_id, purpose="result"),
    )
    echo("\n5. the enclave checks every signature, opens the data, verifies it against the")
    echo("   commitment, computes, seals the result to CloudMolty and signs a receipt")

    # --- log ---------------------------------------------------------------------------
    engine = sqlite_engine(workdir / "log.sqlite")
    try:
        store = SqlLogStore(engine)
        store.create_schema()
        log = TransparencyLog(store)
        log_signer = NoteSigner.from_seed("demo.sealroom.example/log", os.urandom(32))
        envelopes: list[Envelope] = [
            attestation.envelope,
            enclave.evidence.envelope,
            request.envelope,
            approval.envelope,
            receipt.envelope,
        ]
        indices: dict[str, int] = {}
        for env in envelopes:
            indices[env.digest] = log.append(env.to_json())
        checkpoint = log.checkpoint(log_signer)
        bundle = assemble_bundle(
            receipt=receipt.envelope,
            evidence=enclave.evidence.envelope,
            statements=[request.envelope, approval.envelope, attestation.envelope],
            log=log,
            indices=indices,
            checkpoint=checkpoint,
            verifier_key=log_signer.verifier.vkey,
        )
    finally:
        engine.dispose()
    echo(f"\n6. all {len(envelopes)} statements are in the transparency log; checkpoint:")
    echo("   " + checkpoint.rstrip("\n").replace("\n", "\n   "))

    # --- deliver + verify ----------------------------------------------------------------
    opened = ReleasedOutput.from_json(
        open_sealed(
            sealed_result,
            requester,
            SealContext(request_digest=request_id, recipient=requester.party_id, purpose="result"),
        )
    )
    bundle_path = workdir / "bundle.json"
    result_path = workdir / "result.json"
    bundle_path.write_bytes(bundle.to_json())
    result_path.write_bytes(opened.to_json())
    echo(f"\n7. CloudMolty opens its result ({result_path.name}):")
    echo("   " + json.dumps(json.loads(opened.body), sort_keys=True))

    trust = trust_policy(allow_simulated=True, log_key=log_signer.verifier.vkey)
    echo(
        f"\n8. anyone verifies the proof bundle offline: sealroom verify {bundle_path} "
        f"--result {result_path} --allow-simulated"
    )
    report = verify_bundle(
        ProofBundle.from_json(bundle_path.read_bytes()), trust=trust, outputs=[opened]
    )
    _print(report, echo)

    # --- tamper ------------------------------------------------------------------------
    tampered = _flip_receipt_byte(bundle_path.read_bytes())
    echo("\n9. the same bundle with one byte of the receipt changed:")
    try:
        verify_bundle(ProofBundle.from_json(tampered), trust=trust, outputs=[opened])
    except BundleRejected as exc:
        for c in exc.report.failures:
            echo(f"   FAIL  {c.name}: {c.detail}")
        echo("   -> rejected, as it must be")
        return 0
    echo("   -> NOT rejected: this is a bug")
    return 1


def _flip_receipt_byte(bundle: bytes) -> bytes:
    """Change one character of the base64 receipt payload (keeps the JSON well-formed)."""
    doc = json.loads(bundle)
    payload = doc["receipt"]["payload"]
    i = len(payload) // 2
    doc["receipt"]["payload"] = payload[:i] + ("A" if payload[i] != "A" else "B") + payload[i + 1 :]
    return canonical_json(doc)


def _print(report: VerificationReport, echo: Echo) -> None:
    for c in report.checks:
        echo(f"   {'PASS' if c.passed else 'FAIL'}  {c.name}: {c.detail}")
    for w in report.warnings:
        echo(f"   warning: {w}")
    echo(
        f"   VERIFIED: all {len(report.checks)} checks passed"
        + (" (SIMULATED TEE)" if report.simulated else "")
    )
