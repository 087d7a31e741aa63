"""The software-only simulated enclave, and the verifier that refuses it by default.

Simulation exists so that development and tests can run the whole protocol
without TDX hardware. It proves nothing: whoever holds the simulation root key
can sign any report. So every place a reader looks says so — the report's
``tee``, ``simulated_measurement`` and ``warning`` fields, the evidence's ``tee`` and
``simulated`` flags, and the verified result's ``tcb_status`` and warnings —
and :class:`SimulatedVerifier` rejects it unless explicitly told otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from sealroom.attestation.checks import REPORT_DATA_SIZE, check_key_binding, require_unix_time
from sealroom.attestation.evidence import TeeEvidence, VerifiedEvidence, report_data_for
from sealroom.crypto.keys import KEY_SIZE, verify_ed25519
from sealroom.errors import AttestationInvalid, InvalidInput, SignatureInvalid

__all__ = [
    "SIMULATED_BANNER",
    "SIMULATED_MEASUREMENT",
    "SIMULATED_PROVIDER",
    "SIMULATED_WARNING",
    "SimulatedEnclave",
    "SimulatedVerifier",
    "SimulationRoot",
]

REPORT_TYPE = "sealroom.simulated-tee-report"
REPORT_VERSION = 1
SIMULATED_PROVIDER = "sealroom-simulated"
# Made up on purpose, and says so: 48 bytes (the size of a TDX measurement) whose
# hex decodes to "SIMULATED/NOT-A-REAL-MEASUREMENT/sealroom-encl-1".
SIMULATED_MEASUREMENT = b"SIMULATED/NOT-A-REAL-MEASUREMENT/sealroom-encl-1".hex()
SIMULATED_BANNER = (
    "SIMULATED ENCLAVE: a software stand-in for a TEE that protects nothing; "
    "for development and tests only"
)
"""The one line every surface (CLI, demo, SDK warnings) shows whenever a simulated enclave is
used: a simulation must never pass for protection."""
SIMULATED_WARNING = (
    "SIMULATED TEE: this report was produced in software by whoever holds the "
    "simulation root key; it proves nothing about confidentiality or integrity"
)
# Signatures are over this prefix || report, never over the bare report bytes,
# so a simulation root key cannot be tricked into signing anything else.
SIGNATURE_DOMAIN = b"sealroom-simulated-tee-report-v1:"
_REPORT_FIELDS = frozenset(
    {"type", "version", "tee", "report_data", "simulated_measurement", "root_key", "warning"}
)


def _signed_message(report: bytes) -> bytes:
    return SIGNATURE_DOMAIN + report


class SimulationRoot:
    """The Ed25519 key that stands in for a hardware root of trust in simulation."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> SimulationRoot:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, seed: bytes) -> SimulationRoot:
        if not isinstance(seed, bytes) or len(seed) != KEY_SIZE:
            raise InvalidInput(f"simulation root seed must be {KEY_SIZE} bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def private_bytes(self) -> bytes:
        """The 32-byte Ed25519 seed, for whoever persists the simulation root."""
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def public_key(self) -> bytes:
        return self._public

    def sign_report(self, report: bytes) -> bytes:
        return self._key.sign(_signed_message(report))

    def __repr__(self) -> str:
        return f"SimulationRoot(public_key={self._public.hex()!r})"


def _report_bytes(report_data: bytes, root_key: bytes) -> bytes:
    report: dict[str, str | int] = {
        "type": REPORT_TYPE,
        "version": REPORT_VERSION,
        "tee": "simulated",
        "report_data": report_data.hex(),
        "simulated_measurement": SIMULATED_MEASUREMENT,
        "root_key": root_key.hex(),
        "warning": SIMULATED_WARNING,
    }
    return rfc8785.dumps(report)


class SimulatedEnclave:
    """An :class:`~sealroom.attestation.evidence.EvidenceProvider` with no hardware behind it."""

    __slots__ = ("_root",)

    def __init__(self, root: SimulationRoot) -> None:
        self._root = root

    def attest(self, key_document: bytes) -> TeeEvidence:
        if not isinstance(key_document, bytes):
            raise InvalidInput("key_document must be bytes")
        report = _report_bytes(report_data_for(key_document), self._root.public_key)
        return TeeEvidence(
            tee="simulated",
            simulated=True,
            provider=SIMULATED_PROVIDER,
            quote=report,
            signature=self._root.sign_report(report),
        )


@dataclass(frozen=True, slots=True)
class _SimulatedReport:
    report_data: bytes
    root_key: str


def _parse_report(quote: bytes) -> _SimulatedReport:
    """Strictly parse a simulated report: canonical JSON, known fields, exact values."""
    try:
        data: Any = json.loads(quote.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise AttestationInvalid("simulated report: not JSON") from exc
    if not isinstance(data, dict):
        raise AttestationInvalid("simulated report: not a JSON object")
    if set(data) != _REPORT_FIELDS:
        raise AttestationInvalid(f"simulated report: fields must be {sorted(_REPORT_FIELDS)}")
    if rfc8785.dumps(data) != quote:
        raise AttestationInvalid("simulated report: not in canonical (RFC 8785) form")
    expected = {
        "type": REPORT_TYPE,
        "version": REPORT_VERSION,
        "tee": "simulated",
        "simulated_measurement": SIMULATED_MEASUREMENT,
        "warning": SIMULATED_WARNING,
    }
    for name, value in expected.items():
        if data[name] != value or type(data[name]) is not type(value):
            raise AttestationInvalid(f"simulated report: {name} must be {value!r}")
    report_data_hex = data["report_data"]
    if (
        not isinstance(report_data_hex, str)
        or len(report_data_hex) != 2 * REPORT_DATA_SIZE
        or report_data_hex != report_data_hex.lower()
    ):
        raise AttestationInvalid(
            f"simulated report: report_data must be {REPORT_DATA_SIZE} bytes of lowercase hex"
        )
    try:
        report_data = bytes.fromhex(report_data_hex)
    except ValueError as exc:
        raise AttestationInvalid("simulated report: report_data is not hex") from exc
    root_key = data["root_key"]
    if not isinstance(root_key, str):
        raise AttestationInvalid("simulated report: root_key must be a string")
    return _SimulatedReport(report_data=report_data, root_key=root_key)


class SimulatedVerifier:
    """Verifies simulated evidence against a simulation root — only when explicitly allowed."""

    __slots__ = ("_allow_simulated", "_root_public_key")

    def __init__(self, root_public_key: bytes, *, allow_simulated: bool) -> None:
        if not isinstance(root_public_key, bytes) or len(root_public_key) != KEY_SIZE:
            raise InvalidInput(f"simulation root public key must be {KEY_SIZE} bytes")
        self._root_public_key = root_public_key
        self._allow_simulated = allow_simulated is True

    def verify_at_time(
        self, evidence: TeeEvidence, *, key_document: bytes, at_time: int
    ) -> VerifiedEvidence:
        require_unix_time(at_time)
        if not isinstance(key_document, bytes):
            raise InvalidInput("key_document must be bytes")
        if not self._allow_simulated:
            raise AttestationInvalid(
                "simulated TEE evidence is not trusted: it is produced in software and "
                "proves nothing; to accept it for development or tests, allow simulated "
                "evidence explicitly (--allow-simulated, or allow_simulated=True)"
            )
        if evidence.tee != "simulated" or not evidence.simulated:
            raise AttestationInvalid(
                f"simulated verifier: expected tee 'simulated', got {evidence.tee!r}"
            )
        try:
            verify_ed25519(
                self._root_public_key,
                evidence.signature,
                _signed_message(evidence.quote),
                what="simulated report",
            )
        except SignatureInvalid as exc:
            raise AttestationInvalid(
                "simulated report: signature does not verify under the trusted simulation root"
            ) from exc
        report = _parse_report(evidence.quote)
        if report.root_key != self._root_public_key.hex():
            raise AttestationInvalid("simulated report: names a different simulation root")
        check_key_binding(report.report_data, key_document)
        return VerifiedEvidence(
            tee="simulated",
            simulated=True,
            provider=evidence.provider,
            report_data=report.report_data,
            verified_at=at_time,
            tcb_status="Simulated",
            measurements={"simulated_measurement": SIMULATED_MEASUREMENT},
            warnings=(SIMULATED_WARNING,),
        )


def simulation_root_of(evidence: TeeEvidence) -> bytes:
    """The simulation root public key a simulated report names (unverified: pin it to trust it)."""
    if evidence.tee != "simulated":
        raise AttestationInvalid("not simulated evidence")
    report = _parse_report(evidence.quote)
    try:
        return bytes.fromhex(report.root_key)
    except ValueError as exc:
        raise AttestationInvalid("simulated report: root_key is not hex") from exc
