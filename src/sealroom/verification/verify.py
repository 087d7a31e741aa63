"""Offline verification of a proof bundle: every signature, binding, reference and proof.

:func:`verify_bundle` runs every check it can, records each with a plain-words
explanation, and raises :class:`BundleRejected` (carrying the full report) if
any failed. It never returns a verdict that could be ignored: returning at all
means every check passed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sealroom.attestation.evidence import EvidenceVerifier, VerifiedEvidence
from sealroom.crypto.merkle import leaf_hash
from sealroom.errors import SealroomError, VerificationFailed
from sealroom.statements import (
    Approval,
    ComputationRequest,
    DatasetAttestation,
    EnclaveEvidence,
    Policy,
    Receipt,
    ReleasedOutput,
    Signed,
    Statement,
)
from sealroom.transparency.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from sealroom.transparency.proof import verify_inclusion
from sealroom.verification.bundle import ProofBundle

__all__ = ["BundleRejected", "Check", "TrustPolicy", "VerificationReport", "verify_bundle"]

S = TypeVar("S", bound=Statement)

# Chooses the TEE verifier for a bundle's evidence; see :mod:`.trust`.
VerifierFactory = Callable[[EnclaveEvidence], EvidenceVerifier]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    checks: tuple[Check, ...]
    warnings: tuple[str, ...]
    simulated: bool

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": not self.failures,
            "simulated": self.simulated,
            "warnings": list(self.warnings),
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks
            ],
        }


class BundleRejected(VerificationFailed):
    """At least one check failed; ``report`` says which and why."""

    code = "bundle_rejected"
    public_message = "the proof bundle did not verify"

    def __init__(self, report: VerificationReport) -> None:
        self.report = report
        names = ", ".join(c.name for c in report.failures)
        super().__init__(f"failed checks: {names}")

    def diagnostics(self) -> str:
        lines = [super().diagnostics()]
        lines += [f"  - {c.name}: {c.detail}" for c in self.report.failures]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """What a verifier trusts: how to check TEE evidence, and (optionally) the log's key.

    Build one with :meth:`from_parts`; ``tee_verifier`` picks the evidence
    verifier for the bundle's evidence (DCAP with a measurement allowlist in
    production, the simulation verifier when simulation is explicitly allowed).
    """

    tee_verifier: VerifierFactory
    # A pinned log key (C2SP vkey). Without one, the bundle's own key is used and
    # the report says so: that proves consistency, not which log it came from.
    log_key: str | None = None

    @classmethod
    def from_parts(
        cls, *, tee_verifier: VerifierFactory, log_key: str | None = None
    ) -> TrustPolicy:
        return cls(tee_verifier=tee_verifier, log_key=log_key)


@dataclass
class _Checker:
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @contextmanager
    def check(self, name: str, ok_detail: str) -> Iterator[None]:
        try:
            yield
        except SealroomError as exc:
            self.checks.append(Check(name, False, exc.detail or exc.public_message))
            raise _Failed from None
        self.checks.append(Check(name, True, ok_detail))

    def run(self, name: str, ok_detail: str, fn: Callable[[], None]) -> bool:
        try:
            with self.check(name, ok_detail):
                fn()
        except _Failed:
            return False
        return True

    def fail(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, False, detail))


class _Failed(Exception):
    pass


T = TypeVar("T")


def _present(value: T | None, message: str) -> T:
    if value is None:
        raise VerificationFailed(message)
    return value


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise VerificationFailed(message)


def verify_bundle(
    bundle: ProofBundle,
    *,
    trust: TrustPolicy,
    outputs: Sequence[ReleasedOutput] = (),
) -> VerificationReport:
    """Verify everything in ``bundle``; return the report, or raise :class:`BundleRejected`."""
    c = _Checker()
    simulated = _verify(bundle, trust, tuple(bundle.outputs) + tuple(outputs), c)
    report = VerificationReport(tuple(c.checks), tuple(c.warnings), simulated)
    if report.failures or not report.checks:
        raise BundleRejected(report)
    return report


def _verify(
    bundle: ProofBundle, trust: TrustPolicy, outputs: tuple[ReleasedOutput, ...], c: _Checker
) -> bool:
    # 1. The enclave: its self-signed key document, and TEE evidence binding those keys.
    ev: Signed[EnclaveEvidence] | None = None
    try:
        with c.check("enclave key statement", "signed by the enclave key it describes"):
            ev = bundle.evidence.open(EnclaveEvidence)
    except _Failed:
        pass
    simulated = True
    if ev is not None:
        evidence = ev.statement
        simulated = evidence.simulated
        if simulated:
            c.warnings.append(
                "SIMULATED TEE: this result was produced by a software simulation of an "
                "enclave. Nothing protected the data from the machine's operator."
            )
        verified: list[VerifiedEvidence] = []

        def tee() -> None:
            # Checked as of the time the enclave gathered it (signed, in the statement),
            # so the answer is the same on any later day, offline.
            verifier = trust.tee_verifier(evidence)
            verified.append(
                verifier.verify_at_time(
                    evidence.tee_evidence(),
                    key_document=evidence.keys.canonical_bytes(),
                    at_time=evidence.created_at,
                )
            )

        if c.run(
            "TEE evidence",
            f"{evidence.tee} evidence valid at its creation (unix time {evidence.created_at}), "
            "and its report data binds the enclave's keys",
            tee,
        ):
            c.warnings.extend(verified[0].warnings)

    # 2. The receipt, signed by that enclave key.
    rc: Signed[Receipt] | None = None
    try:
        with c.check("receipt signature", "signed by the enclave key in the evidence"):
            rc = bundle.receipt.open(Receipt)
            keys = _present(ev, "no verified enclave key to check the receipt against")
            _require(
                bundle.receipt.signer == keys.statement.keys.identity(),
                "the receipt was signed by a key other than the attested enclave key",
            )
    except _Failed:
        rc = None
    if rc is None or ev is None:
        _verify_log(bundle, trust, c)
        return simulated
    receipt = rc.statement

    def labels() -> None:
        _require(receipt.evidence == ev.digest, "the receipt names different enclave evidence")
        _require(
            receipt.tee == ev.statement.tee and receipt.simulated == ev.statement.simulated,
            "the receipt's TEE label differs from the evidence",
        )

    c.run("receipt names this enclave", "receipt refers to the evidence and its TEE label", labels)

    # 3. The request, the approvals and the datasets the receipt refers to.
    req: Signed[ComputationRequest] | None = None
    try:
        with c.check("computation request", "signed by the requester; the receipt refers to it"):
            env = _present(
                bundle.statement(receipt.request), f"request {receipt.request} is not in the bundle"
            )
            req = env.open(ComputationRequest)
    except _Failed:
        req = None
    if req is not None:
        request = req.statement

        def code() -> None:
            _require(
                request.computation == receipt.computation,
                "the receipt ran different code from what was requested",
            )

        c.run(
            "computation code",
            f"{receipt.computation.id} {receipt.computation.version} with code digest "
            f"{receipt.computation.code_digest} is what was requested",
            code,
        )

        def timing() -> None:
            _require(
                request.created_at <= receipt.issued_at <= request.expires_at,
                "the receipt was issued outside the request's validity window",
            )
            _require(
                ev.statement.created_at <= receipt.issued_at,
                "the receipt predates the enclave evidence",
            )

        c.run("timing", "request, evidence and receipt times are in order", timing)

        owners: dict[str, str] = {}

        def datasets() -> None:
            receipt_inputs = {i.dataset: i.commitment_root for i in receipt.inputs}
            _require(
                set(receipt_inputs) == set(request.inputs),
                "the receipt's inputs differ from the requested datasets",
            )
            policies: set[str] = set()
            for digest in request.inputs:
                env = _present(
                    bundle.statement(digest), f"dataset attestation {digest} is not in the bundle"
                )
                att = env.open(DatasetAttestation).statement
                _require(
                    hmac.compare_digest(att.commitment.root, receipt_inputs[digest]),
                    f"the enclave's input for {digest} does not match the owner's commitment",
                )
                owners[digest] = att.owner
                if att.policy is not None:
                    policies.add(att.policy)
            _require(
                policies <= set(receipt.policies),
                "the receipt omits a dataset policy that applied",
            )
            if request.room_policy is not None:
                room = _present(
                    bundle.statement(request.room_policy),
                    f"room policy {request.room_policy} is not in the bundle",
                )
                room.open(Policy)
                _require(
                    request.room_policy in receipt.policies,
                    "the receipt omits the room policy that applied",
                )
            # The signed decision record: one per input, in order, naming each input's policy,
            # and charging exactly what privacy_spent declares.
            _require(
                tuple(d.dataset for d in receipt.decisions) == tuple(request.inputs),
                "the receipt's decision record does not cover the requested inputs in order",
            )
            spent = {c.dataset: (c.epsilon, c.delta) for c in receipt.privacy_spent}
            for d in receipt.decisions:
                att_policy = bundle.statement(d.dataset)
                assert att_policy is not None  # checked above
                _require(
                    d.policy == att_policy.open(DatasetAttestation).statement.policy,
                    f"the decision record names another policy for {d.dataset}",
                )
                _require(
                    d.room_policy == request.room_policy,
                    f"the decision record for {d.dataset} names another room policy "
                    "than the request",
                )
                _require(
                    spent.get(d.dataset, ("0", "0")) == (d.epsilon, d.delta),
                    f"the decision record's charge for {d.dataset} differs from privacy_spent",
                )

        c.run(
            "dataset attestations",
            f"{len(request.inputs)} owner-signed attestation(s); the enclave's input "
            "commitments match them",
            datasets,
        )

        def approvals() -> None:
            approved: set[str] = set()
            for digest in receipt.approvals:
                env = _present(bundle.statement(digest), f"approval {digest} is not in the bundle")
                appr = env.open(Approval).statement
                _require(appr.request == req.digest, f"approval {digest} is for another request")
                _require(appr.decision == "approve", f"approval {digest} is a rejection")
                _require(
                    owners.get(appr.dataset) == appr.approver,
                    f"approval {digest} is not signed by the owner of {appr.dataset}",
                )
                _require(
                    request.created_at <= appr.created_at <= receipt.issued_at,
                    f"approval {digest} is dated outside the request's lifetime",
                )
                approved.add(appr.dataset)
            missing = set(request.inputs) - approved
            _require(not missing, f"no owner approval for {sorted(missing)}")

        c.run(
            "owner approvals",
            f"every dataset's owner approved this request ({len(receipt.approvals)} approval(s))",
            approvals,
        )

        def recipients() -> None:
            _require(
                sorted(o.recipient for o in receipt.outputs) == sorted(request.recipients),
                "results went to parties other than the requested recipients",
            )

        c.run("recipients", "results were released only to the requested recipients", recipients)

    for output in outputs:

        def check_output(output: ReleasedOutput = output) -> None:
            _require(output.request == receipt.request, "this output belongs to another request")
            refs = [o for o in receipt.outputs if o.recipient == output.recipient]
            _require(bool(refs), f"the receipt released nothing to {output.recipient}")
            _require(
                hmac.compare_digest(refs[0].commitment, output.commitment()),
                "the output differs from what the enclave committed to in the receipt",
            )

        c.run(
            f"output for {output.recipient[:12]}...",
            "the result matches the receipt's commitment",
            check_output,
        )

    _verify_log(bundle, trust, c)
    return simulated


def _verify_log(bundle: ProofBundle, trust: TrustPolicy, c: _Checker) -> None:
    key = trust.log_key or bundle.log.verifier_key
    if trust.log_key is not None and trust.log_key != bundle.log.verifier_key:
        c.fail("log key", "the bundle names a different log key from the one pinned")
        return
    if trust.log_key is None:
        c.warnings.append(
            "log key taken from the bundle itself (not pinned with --log-key): the log "
            "proofs show the statements are in a consistent log, not which log."
        )
    opened: list[Checkpoint] = []
    if not c.run(
        "log checkpoint",
        "the transparency log's signed checkpoint verifies",
        lambda: opened.append(open_checkpoint(bundle.log.checkpoint, NoteVerifier.from_vkey(key))),
    ):
        return
    cp = opened[0]
    required = [bundle.receipt, bundle.evidence, *bundle.statements]

    def inclusion() -> None:
        for env in required:
            entry = _present(
                bundle.log.entry_for(env.digest), f"no log proof for {env.type} {env.digest}"
            )
            verify_inclusion(
                entry.index, cp.size, leaf_hash(env.to_json()), entry.proof, cp.root_hash
            )

    c.run(
        "log inclusion",
        f"all {len(required)} statements are in the log at size {cp.size}",
        inclusion,
    )
