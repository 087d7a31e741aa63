"""Enclave pins: what a party (a deployment, a data owner) accepts as "the" enclave.

A pin names, for real TDX evidence, a measurement allowlist (the same JSON
format as ``--measurements``, incl. ``compose_hash``) and, for simulated
evidence, the one simulation root that may sign reports. A pin that names
nothing for the evidence's kind refuses it: fail closed. Simulated evidence
is accepted only through a pinned root (never the root a report names itself).

Two ways to check: :meth:`EnclavePin.check_fresh` for live decisions (admit an
enclave, seal data to it) verifies at the CURRENT time and refuses evidence
older than ``max_evidence_age``; :meth:`EnclavePin.check_as_of` verifies as of
a past time, for offline bundle verification, so a report never changes.
Every refusal starts with ``rule enclave:`` so a reader knows which rule spoke.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from sealroom.attestation.collateral import (
    EMBEDDED_COLLATERAL_WARNING,
    CollateralSource,
    EmbeddedCollateral,
    with_collateral,
)
from sealroom.attestation.dcap import DcapPolicy, DcapVerifier, MeasurementAllowlist
from sealroom.attestation.evidence import EvidenceVerifier, TeeEvidence, VerifiedEvidence
from sealroom.attestation.simulated import SimulatedVerifier
from sealroom.crypto.keys import KEY_SIZE
from sealroom.errors import AttestationInvalid, InvalidInput, SealroomError

__all__ = [
    "DEFAULT_MAX_EVIDENCE_AGE",
    "MAX_CLOCK_SKEW",
    "EnclavePin",
    "measurements_policy",
    "parse_enclave_pin",
    "parse_simulation_root",
]

# Evidence older than this is not trusted for a live decision unless a pin says otherwise;
# enclaves re-attest well before (at half of it by default).
DEFAULT_MAX_EVIDENCE_AGE = 24 * 3600
# Evidence may be dated this far ahead of the checker's clock (clocks differ a little).
MAX_CLOCK_SKEW = 300
_MAX_AGE_LIMIT = 366 * 24 * 3600

_ALLOWLIST_FIELDS = ("mrtd", "rtmr0", "rtmr1", "rtmr2", "mr_config_id", "compose_hash")
_POLICY_FIELDS = ("accepted_tcb_statuses", "allowed_advisory_ids")
_PIN_FIELDS = frozenset({"measurements", "simulation_root", "max_evidence_age"})


def measurements_policy(value: object) -> DcapPolicy:
    """A :class:`DcapPolicy` from ``{"mrtd": ["<hex>", ...], ..., "accepted_tcb_statuses": [...]}``."""
    if not isinstance(value, Mapping):
        raise InvalidInput("measurements must be a JSON object")
    unknown = set(value) - set(_ALLOWLIST_FIELDS) - set(_POLICY_FIELDS)
    if unknown:
        raise InvalidInput(f"measurements: unknown fields {sorted(unknown)}")
    lists: dict[str, frozenset[str]] = {}
    for name, items in value.items():
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise InvalidInput(f"measurements.{name} must be a list of strings")
        lists[name] = frozenset(items)
    empty: frozenset[str] = frozenset()
    allowlist = MeasurementAllowlist(
        mrtd=lists.get("mrtd", empty),
        rtmr0=lists.get("rtmr0", empty),
        rtmr1=lists.get("rtmr1", empty),
        rtmr2=lists.get("rtmr2", empty),
        mr_config_id=lists.get("mr_config_id", empty),
        compose_hash=lists.get("compose_hash", empty),
    )
    return DcapPolicy(
        measurements=allowlist,
        accepted_tcb_statuses=lists.get("accepted_tcb_statuses", frozenset({"UpToDate"})),
        allowed_advisory_ids=lists.get("allowed_advisory_ids", empty),
    )


def parse_simulation_root(value: object) -> bytes:
    """A simulation root public key from its lowercase hex (as ``--simulation-root`` takes it)."""
    if (
        not isinstance(value, str)
        or len(value) != 2 * KEY_SIZE
        or value != value.lower()
        or any(c not in "0123456789abcdef" for c in value)
    ):
        raise InvalidInput(f"simulation_root must be {KEY_SIZE} bytes of lowercase hex")
    return bytes.fromhex(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnclavePin:
    """The measurements (TDX) and simulation root (simulation) accepted, and the freshness bound."""

    measurements: DcapPolicy | None = None
    simulation_root: bytes | None = None
    max_evidence_age: int = DEFAULT_MAX_EVIDENCE_AGE

    def __post_init__(self) -> None:
        if self.simulation_root is not None and (
            not isinstance(self.simulation_root, bytes) or len(self.simulation_root) != KEY_SIZE
        ):
            raise InvalidInput(f"simulation_root must be {KEY_SIZE} bytes")
        if (
            isinstance(self.max_evidence_age, bool)
            or not isinstance(self.max_evidence_age, int)
            or not 1 <= self.max_evidence_age <= _MAX_AGE_LIMIT
        ):
            raise InvalidInput(f"max_evidence_age must be 1..{_MAX_AGE_LIMIT} seconds")

    @property
    def empty(self) -> bool:
        """True when the pin accepts no enclave at all."""
        return self.measurements is None and self.simulation_root is None

    def describe(self) -> str:
        """The pin in words, for reports and refusals."""
        parts = []
        if self.measurements is not None:
            m = self.measurements.measurements
            named = [
                f"{name} in {{{', '.join(v[:12] + '...' for v in sorted(getattr(m, name)))}}}"
                for name in _ALLOWLIST_FIELDS
                if getattr(m, name)
            ]
            parts.append("TDX measurements " + (", ".join(named) or "(none listed)"))
        if self.simulation_root is not None:
            parts.append(f"SIMULATED enclave under simulation root {self.simulation_root.hex()}")
        return "; ".join(parts) or "nothing (no enclave is accepted)"

    def verifier(self, tee: str) -> EvidenceVerifier:
        """The verifier this pin implies for ``tee`` evidence; raise if the pin names none."""
        if tee == "simulated":
            if self.simulation_root is None:
                raise AttestationInvalid(
                    "rule enclave: simulated evidence, but no simulation root is pinned "
                    f"(the pin accepts {self.describe()})"
                )
            return SimulatedVerifier(self.simulation_root, allow_simulated=True)
        if self.measurements is None:
            raise AttestationInvalid(
                f"rule enclave: {tee} evidence, but no measurement allowlist is pinned "
                f"(the pin accepts {self.describe()})"
            )
        return DcapVerifier(self.measurements, allow_simulated=False)

    def check_as_of(
        self, evidence: TeeEvidence, *, key_document: bytes, at_time: int
    ) -> VerifiedEvidence:
        """Verify ``evidence`` (binding ``key_document``) under this pin as of ``at_time``."""
        verifier = self.verifier(evidence.tee)
        try:
            return verifier.verify_at_time(evidence, key_document=key_document, at_time=at_time)
        except AttestationInvalid as exc:
            detail = exc.detail or exc.public_message
            raise AttestationInvalid(
                f"rule enclave: the evidence does not satisfy the pin ({self.describe()}): {detail}"
            ) from exc

    def check_fresh(
        self,
        evidence: TeeEvidence,
        *,
        key_document: bytes,
        created_at: int,
        now: int,
        collateral: CollateralSource | None = None,
    ) -> VerifiedEvidence:
        """For a live decision: valid at ``now`` with the collateral from ``collateral`` (the
        party's PCCS; the evidence's own copy, with a warning, when none is configured) and
        at most ``max_evidence_age`` old; evidence dated ahead of ``now`` is refused too.

        A PCCS that cannot be reached raises :class:`~sealroom.errors.BackendUnavailable`."""
        if created_at > now + MAX_CLOCK_SKEW:
            raise AttestationInvalid(
                f"rule enclave: the evidence is dated in the future ({created_at} > {now})"
            )
        age = now - created_at
        if age > self.max_evidence_age:
            raise AttestationInvalid(
                f"rule enclave: the evidence is stale ({age} s old; at most "
                f"{self.max_evidence_age} s is accepted): the enclave must re-attest"
            )
        source = EmbeddedCollateral() if collateral is None else collateral
        # Fetched before the quote is verified: a configured PCCS that cannot be reached
        # is an error (BackendUnavailable), never a fall back to the embedded copy.
        checked = with_collateral(evidence, source)
        verified = self.check_as_of(checked, key_document=key_document, at_time=now)
        if evidence.tee == "tdx" and source.embedded:
            verified = dataclasses.replace(
                verified, warnings=(*verified.warnings, EMBEDDED_COLLATERAL_WARNING)
            )
        return verified


def parse_enclave_pin(value: object) -> EnclavePin:
    """Parse ``{"measurements": {...}, "simulation_root": "<hex>", "max_evidence_age": s}``."""
    if not isinstance(value, Mapping):
        raise InvalidInput("enclave pin must be a JSON object")
    unknown = set(value) - _PIN_FIELDS
    if unknown:
        raise InvalidInput(f"enclave pin: unknown fields {sorted(unknown)}")
    try:
        measurements = value.get("measurements")
        root = value.get("simulation_root")
        age = value.get("max_evidence_age", DEFAULT_MAX_EVIDENCE_AGE)
        pin = EnclavePin(
            measurements=None if measurements is None else measurements_policy(measurements),
            simulation_root=None if root is None else parse_simulation_root(root),
            max_evidence_age=age,  # checked in __post_init__
        )
    except SealroomError as exc:
        raise InvalidInput(f"enclave pin: {exc.detail or exc.public_message}") from exc
    if pin.empty:
        raise InvalidInput("enclave pin: name 'measurements' or 'simulation_root' (or both)")
    return pin
