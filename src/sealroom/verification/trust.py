"""What a verifier trusts (:class:`TrustPolicy`), built from what its user says they trust.

Fail closed: TDX evidence needs a measurement allowlist, simulated evidence
needs ``allow_simulated``, and anything left unpinned (the log key, the
simulation root) is accepted only with a warning in the report. A trusted
checkpoint and a witness policy, when given, add the checks that use them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from sealroom.attestation.dcap import DcapPolicy, DcapVerifier
from sealroom.attestation.evidence import EvidenceVerifier, TeeEvidence, VerifiedEvidence
from sealroom.attestation.pins import measurements_policy
from sealroom.attestation.simulated import SimulatedVerifier, simulation_root_of
from sealroom.statements import EnclaveEvidence, parse_json_strict
from sealroom.transparency.cosignature import WitnessPolicy

__all__ = ["TrustPolicy", "VerifierFactory", "parse_measurements", "trust_policy"]

# Chooses the TEE verifier for a bundle's evidence.
VerifierFactory = Callable[[EnclaveEvidence], EvidenceVerifier]


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """What a verifier trusts: how to check TEE evidence, and (optionally) the log's key.

    Build one with :func:`trust_policy`; ``tee_verifier`` picks the evidence
    verifier for the bundle's evidence (DCAP with a measurement allowlist in
    production, the simulation verifier when simulation is explicitly allowed).
    """

    tee_verifier: VerifierFactory
    # A pinned log key (C2SP vkey). Without one, the bundle's own key is used and
    # the report says so: that proves consistency, not which log it came from.
    log_key: str | None = None
    # A checkpoint of the log the verifier trusts (a signed note): the bundle's must be
    # consistent with it ("log consistency").
    checkpoint: str | None = None
    # Witnesses whose cosignatures the bundle's checkpoint must carry, m of n
    # ("witness cosignatures").
    witnesses: WitnessPolicy | None = None


def parse_measurements(data: bytes) -> DcapPolicy:
    """Parse a JSON allowlist: ``{"mrtd": ["<hex>", ...], ..., "accepted_tcb_statuses": [...]}``."""
    return measurements_policy(parse_json_strict(data, max_size=1 << 20, what="measurements"))


class _UnpinnedSimulationRoot:
    """Accepts the simulation root a report names, and says so."""

    def __init__(self, inner: SimulatedVerifier) -> None:
        self._inner = inner

    def verify_at_time(
        self, evidence: TeeEvidence, *, key_document: bytes, at_time: int
    ) -> VerifiedEvidence:
        verified = self._inner.verify_at_time(evidence, key_document=key_document, at_time=at_time)
        return dataclasses.replace(
            verified,
            warnings=(
                *verified.warnings,
                "simulation root taken from the evidence itself (not pinned)",
            ),
        )


def trust_policy(
    *,
    allow_simulated: bool = False,
    log_key: str | None = None,
    measurements: bytes | None = None,
    simulation_root: bytes | None = None,
    checkpoint: str | None = None,
    witnesses: WitnessPolicy | None = None,
) -> TrustPolicy:
    dcap = parse_measurements(measurements) if measurements is not None else DcapPolicy()

    def tee_verifier(statement: EnclaveEvidence) -> EvidenceVerifier:
        evidence = statement.tee_evidence()
        if evidence.tee == "simulated":
            if simulation_root is not None:
                return SimulatedVerifier(simulation_root, allow_simulated=allow_simulated)
            root = simulation_root_of(evidence)
            return _UnpinnedSimulationRoot(SimulatedVerifier(root, allow_simulated=allow_simulated))
        return DcapVerifier(dcap, allow_simulated=allow_simulated)

    return TrustPolicy(
        tee_verifier=tee_verifier, log_key=log_key, checkpoint=checkpoint, witnesses=witnesses
    )
