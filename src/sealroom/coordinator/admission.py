"""Enclave admission: which enclaves this deployment lets register and receive sealed data.

The coordinator verifies an enclave's evidence when it registers, under the
deployment's pin (:class:`~sealroom.attestation.pins.EnclavePin`: a TDX
measurement allowlist incl. ``compose_hash``, and/or the deployment's pinned
simulation root), at the current time and no older than ``max_evidence_age``.
Fail closed: a coordinator started without an admission policy admits no
enclave, and its refusal says so. Admission is re-checked whenever an enclave
is listed or named by an upload, so stale evidence drops out by itself.

Admission keeps strangers' enclaves off an honest coordinator; it is no
reason for an owner to trust the coordinator: owners check their own pins
before sealing (:mod:`sealroom.client.trust`), the enclave checks them again,
and ``sealroom verify`` checks them in the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealroom.attestation.evidence import VerifiedEvidence
from sealroom.attestation.pins import EnclavePin
from sealroom.errors import AttestationInvalid, PolicyDenied
from sealroom.statements import EnclaveEvidence

__all__ = ["NO_ADMISSION_POLICY", "AdmissionPolicy"]

NO_ADMISSION_POLICY = (
    "this coordinator has no enclave admission policy, so it admits no enclave "
    "(start it with --enclave-measurements FILE or --simulation-root HEX)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmissionPolicy:
    """The deployment's pin for enclaves; ``pin=None`` admits nothing."""

    pin: EnclavePin | None = None

    def describe(self) -> str:
        return NO_ADMISSION_POLICY if self.pin is None else f"admits {self.pin.describe()}"

    def admit(self, evidence: EnclaveEvidence, *, now: int) -> VerifiedEvidence:
        """Verify ``evidence`` fresh under the pin, or raise :class:`PolicyDenied` saying why."""
        if self.pin is None:
            raise PolicyDenied(f"enclave admission refused: {NO_ADMISSION_POLICY}")
        try:
            return self.pin.check_fresh(
                evidence.tee_evidence(),
                key_document=evidence.keys.canonical_bytes(),
                created_at=evidence.created_at,
                now=now,
            )
        except AttestationInvalid as exc:
            raise PolicyDenied(
                f"enclave admission refused: {exc.detail or exc.public_message}"
            ) from exc
