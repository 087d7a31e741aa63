"""TEE evidence: providers that make it (simulated, dstack) and verifiers that check it.

Verifiers raise :class:`~sealroom.errors.AttestationInvalid` naming the failed
check; they never return a bool, and they verify at an explicit ``at_time``.
"""

from __future__ import annotations

from sealroom.attestation.checks import check_key_binding
from sealroom.attestation.dcap import (
    DcapPolicy,
    DcapQuoteResult,
    DcapVerifier,
    MeasurementAllowlist,
    verify_dcap_quote,
)
from sealroom.attestation.dstack import CollateralFetcher, DstackProvider, pccs_collateral_fetcher
from sealroom.attestation.evidence import (
    EvidenceProvider,
    EvidenceVerifier,
    TeeEvidence,
    VerifiedEvidence,
    report_data_for,
)
from sealroom.attestation.rtmr import parse_event_log, replay_rtmr3, runtime_event_digest
from sealroom.attestation.simulated import SimulatedEnclave, SimulatedVerifier, SimulationRoot

__all__ = [
    "CollateralFetcher",
    "DcapPolicy",
    "DcapQuoteResult",
    "DcapVerifier",
    "DstackProvider",
    "EvidenceProvider",
    "EvidenceVerifier",
    "MeasurementAllowlist",
    "SimulatedEnclave",
    "SimulatedVerifier",
    "SimulationRoot",
    "TeeEvidence",
    "VerifiedEvidence",
    "check_key_binding",
    "parse_event_log",
    "pccs_collateral_fetcher",
    "replay_rtmr3",
    "report_data_for",
    "runtime_event_digest",
    "verify_dcap_quote",
]
