"""TEE evidence as carried in statements, and the provider / verifier seams.

An enclave proves which keys it holds by putting
``SHA-512("sealroom-enclave-v1:" || canonical key document)`` into the
64-byte ``report_data`` of its TEE report. Providers produce evidence for a
key document; verifiers check it at an explicit time and raise
:class:`~sealroom.errors.AttestationInvalid` on any failure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sealroom.crypto.keys import b64decode_strict, b64encode
from sealroom.errors import InvalidInput

__all__ = [
    "REPORT_DATA_DOMAIN",
    "EvidenceProvider",
    "EvidenceVerifier",
    "TeeEvidence",
    "TeeKind",
    "VerifiedEvidence",
    "report_data_for",
]

REPORT_DATA_DOMAIN = b"sealroom-enclave-v1:"
TeeKind = Literal["tdx", "simulated"]
_TEE_KINDS = ("tdx", "simulated")
MAX_EVIDENCE_FIELD = 4 << 20


def report_data_for(key_document: bytes) -> bytes:
    return hashlib.sha512(REPORT_DATA_DOMAIN + key_document).digest()


@dataclass(frozen=True, slots=True)
class TeeEvidence:
    """What a provider returns and a proof bundle stores, enough to verify offline.

    ``simulated`` is true for anything that is not a real TEE vouching for this
    very process: the software simulation, and the dstack guest-agent stand-in
    that replays a recorded quote. Verifiers refuse it unless told otherwise.
    """

    tee: TeeKind
    simulated: bool
    provider: str
    # tdx: the raw TDX quote. simulated: the canonical simulated report bytes.
    quote: bytes
    # simulated: the simulation root's Ed25519 signature over ``quote``.
    signature: bytes = b""
    # tdx: the guest agent's event log (JSON text) and the DCAP collateral
    # (dcap-qvl QuoteCollateralV3 JSON text) gathered when the evidence was made.
    event_log: str = ""
    collateral: str = ""
    # Provider information (dstack ``Info``), JSON text; informational only.
    info: str = ""

    def __post_init__(self) -> None:
        if self.tee not in _TEE_KINDS:
            raise InvalidInput(f"evidence.tee must be one of {_TEE_KINDS}, got {self.tee!r}")
        if self.tee == "simulated" and not self.simulated:
            raise InvalidInput("evidence with tee 'simulated' must be marked simulated")
        for name in ("quote", "signature"):
            if len(getattr(self, name)) > MAX_EVIDENCE_FIELD:
                raise InvalidInput(f"evidence.{name} is larger than {MAX_EVIDENCE_FIELD} bytes")
        for name in ("event_log", "collateral", "info", "provider"):
            if len(getattr(self, name)) > MAX_EVIDENCE_FIELD:
                raise InvalidInput(f"evidence.{name} is larger than {MAX_EVIDENCE_FIELD} chars")

    def to_dict(self) -> dict[str, Any]:
        return {
            "tee": self.tee,
            "simulated": self.simulated,
            "provider": self.provider,
            "quote": b64encode(self.quote),
            "signature": b64encode(self.signature),
            "event_log": self.event_log,
            "collateral": self.collateral,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, data: Any) -> TeeEvidence:
        if not isinstance(data, dict):
            raise InvalidInput("evidence must be an object")
        expected = {
            "tee",
            "simulated",
            "provider",
            "quote",
            "signature",
            "event_log",
            "collateral",
            "info",
        }
        if set(data) != expected:
            missing, extra = expected - set(data), set(data) - expected
            raise InvalidInput(
                f"evidence fields: missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        if not isinstance(data["simulated"], bool):
            raise InvalidInput("evidence.simulated must be a boolean")
        for name in ("tee", "provider", "event_log", "collateral", "info"):
            if not isinstance(data[name], str):
                raise InvalidInput(f"evidence.{name} must be a string")
        return cls(
            tee=data["tee"],
            simulated=data["simulated"],
            provider=data["provider"],
            quote=b64decode_strict(data["quote"], what="evidence.quote"),
            signature=b64decode_strict(data["signature"], what="evidence.signature"),
            event_log=data["event_log"],
            collateral=data["collateral"],
            info=data["info"],
        )


@dataclass(frozen=True, slots=True)
class VerifiedEvidence:
    """What a verifier established. Only ever constructed after every check passed."""

    tee: TeeKind
    simulated: bool
    provider: str
    report_data: bytes
    verified_at: int
    # e.g. "UpToDate"; "Simulated" for simulated evidence
    tcb_status: str
    advisory_ids: tuple[str, ...] = ()
    # name -> lowercase hex: mrtd, rtmr0..rtmr3, mr_config_id, compose_hash, ...
    measurements: dict[str, str] = field(default_factory=dict)
    # human-readable notes the verifier wants shown (e.g. "simulated evidence allowed")
    warnings: tuple[str, ...] = ()


class EvidenceProvider(Protocol):
    def attest(self, key_document: bytes) -> TeeEvidence:
        """Evidence binding ``key_document`` (via :func:`report_data_for`) to this TEE."""
        ...


class EvidenceVerifier(Protocol):
    def verify_at_time(
        self, evidence: TeeEvidence, *, key_document: bytes, at_time: int
    ) -> VerifiedEvidence:
        """Verify ``evidence`` for ``key_document`` as of unix time ``at_time``; raise on failure."""
        ...
