"""Client-side checks of what the coordinator serves: enclave evidence and log proofs.

The coordinator is untrusted. Before an owner seals data to an enclave key,
the key's evidence is verified here exactly as the offline bundle verifier
checks it (:func:`sealroom.verification.verify.verify_bundle`): with the
verifier the :class:`TrustPolicy` picks, at the time the enclave made it.
Simulated evidence fails unless the caller allowed simulation, and then the
result says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sealroom.attestation.simulated import SIMULATED_BANNER
from sealroom.client.http import Client
from sealroom.client.local import pin_log_key
from sealroom.crypto.keys import PublicIdentity
from sealroom.errors import AttestationInvalid, VerificationFailed
from sealroom.statements import EnclaveEvidence, Envelope, Signed
from sealroom.transparency.checkpoint import NoteVerifier
from sealroom.verification.trust import trust_policy
from sealroom.verification.verify import TrustPolicy
from sealroom.wire import EnclaveView

__all__ = [
    "VerifiedEnclave",
    "trusted_log_key",
    "verify_enclave",
    "verify_enclave_evidence",
]


@dataclass(frozen=True, slots=True)
class VerifiedEnclave:
    """An enclave whose evidence verified: seal to :attr:`public`, name :attr:`digest`."""

    evidence: Signed[EnclaveEvidence]
    warnings: tuple[str, ...]

    @property
    def digest(self) -> str:
        return self.evidence.digest

    @property
    def public(self) -> PublicIdentity:
        return self.evidence.statement.keys.identity()

    @property
    def simulated(self) -> bool:
        return self.evidence.statement.simulated


def verify_enclave_evidence(envelope: Envelope, *, trust: TrustPolicy, now: int) -> VerifiedEnclave:
    """Open the evidence statement and verify its TEE evidence and key binding; raise if not."""
    signed = envelope.open(EnclaveEvidence)
    evidence = signed.statement
    if evidence.created_at > now + 300:
        raise AttestationInvalid(
            f"the enclave evidence is dated in the future ({evidence.created_at} > {now})"
        )
    verifier = trust.tee_verifier(evidence)
    verified = verifier.verify_at_time(
        evidence.tee_evidence(),
        key_document=evidence.keys.canonical_bytes(),
        at_time=evidence.created_at,
    )
    warnings = list(verified.warnings)
    if evidence.simulated:
        warnings.insert(0, SIMULATED_BANNER)
    return VerifiedEnclave(evidence=signed, warnings=tuple(warnings))


def verify_enclave(
    client: Client, *, allow_simulated: bool, now: int, measurements: bytes | None = None
) -> VerifiedEnclave:
    """Fetch the coordinator's current enclave and verify it; the served labels must agree."""
    view: EnclaveView = client.enclave()
    trust = trust_policy(allow_simulated=allow_simulated, measurements=measurements)
    verified = verify_enclave_evidence(view.envelope, trust=trust, now=now)
    if verified.digest != view.evidence:
        raise VerificationFailed("the coordinator's enclave view names other evidence")
    if view.party != verified.public.party_id:
        raise VerificationFailed("the coordinator's enclave party differs from the attested key")
    if view.simulated != verified.simulated or view.tee != verified.evidence.statement.tee:
        raise VerificationFailed("the coordinator mislabels the enclave's TEE kind")
    return verified


def trusted_log_key(client: Client, home: Path) -> str:
    """The coordinator's log key, pinned on first use in ``home`` (a change is refused)."""
    key = client.log_key().verifier_key
    NoteVerifier.from_vkey(key)  # malformed keys fail here, before they are pinned
    pin_log_key(home, client.base_url, key)
    return key
