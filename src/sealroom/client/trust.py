"""Client-side checks of what the coordinator serves: enclave evidence and log proofs.

The coordinator is untrusted, and so is its list of admitted enclaves. Before
an owner seals data, its client picks an enclave from that list that
satisfies every pin that applies (:class:`~sealroom.attestation.pins.EnclavePin`):
the ``enclave`` rule of each of the owner's dataset policies (and the room's),
and the client's own options (``--measurements``, ``--simulation-root``). The
evidence is verified at the CURRENT time and must be younger than the
smallest ``max_evidence_age`` (24 h by default): a decision to seal now is
never taken on evidence judged as of its own date. Simulated evidence needs
``allow_simulated`` and a pinned simulation root; when neither the policy nor
the options pin one, the root is pinned on first use per coordinator (in the
party's home, like the log key) and the result says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sealroom.attestation.collateral import CollateralSource, EmbeddedCollateral, prefetch
from sealroom.attestation.pins import DEFAULT_MAX_EVIDENCE_AGE, EnclavePin
from sealroom.attestation.simulated import SIMULATED_BANNER, simulation_root_of
from sealroom.client.http import Client
from sealroom.client.local import pin_log_key, pin_simulation_root, pinned_simulation_root
from sealroom.crypto.keys import PublicIdentity
from sealroom.errors import (
    AttestationInvalid,
    BackendUnavailable,
    RegionMismatch,
    SealroomError,
    VerificationFailed,
)
from sealroom.statements import EnclaveEvidence, Envelope, Signed
from sealroom.transparency.checkpoint import NoteVerifier
from sealroom.verification.trust import parse_measurements
from sealroom.wire import EnclaveView

__all__ = [
    "SealingTrust",
    "VerifiedEnclave",
    "choose_enclave",
    "trusted_log_key",
    "verify_enclave_evidence",
]

_TOFU_WARNING = (
    "simulation root pinned on first use for this coordinator (no policy or option pins one)"
)


@dataclass(frozen=True, slots=True)
class VerifiedEnclave:
    """An enclave whose evidence verified: seal to :attr:`public`, name :attr:`digest`."""

    evidence: Signed[EnclaveEvidence]
    warnings: tuple[str, ...]
    # A simulation root taken on first use: pinned once this enclave is chosen.
    first_use_root: bytes | None = None

    @property
    def digest(self) -> str:
        return self.evidence.digest

    @property
    def public(self) -> PublicIdentity:
        return self.evidence.statement.keys.identity()

    @property
    def simulated(self) -> bool:
        return self.evidence.statement.simulated


@dataclass(frozen=True, slots=True, kw_only=True)
class SealingTrust:
    """What an owner's client accepts to seal to, besides its policies' pins.

    ``measurements`` (JSON allowlist bytes) pins TDX enclaves; ``simulation_root``
    pins simulated ones (which also need ``allow_simulated``); ``first_use_root`` is
    the root pinned earlier for this coordinator, used when nothing else pins one;
    ``collateral`` is where current DCAP collateral comes from (the owner's PCCS), the
    evidence's own copy (with a warning) when none is configured.
    """

    allow_simulated: bool = False
    measurements: bytes | None = None
    simulation_root: bytes | None = None
    first_use_root: bytes | None = None
    collateral: CollateralSource = dataclasses.field(default_factory=EmbeddedCollateral)


def verify_enclave_evidence(
    envelope: Envelope, *, pins: Sequence[EnclavePin], trust: SealingTrust, now: int
) -> VerifiedEnclave:
    """Verify the evidence, fresh at ``now``, under every pin and the client's options; raise if not."""
    signed = envelope.open(EnclaveEvidence)
    ev = signed.statement
    if ev.simulated and not trust.allow_simulated:
        raise AttestationInvalid(
            "simulated TEE evidence is not trusted: it is produced in software and "
            "proves nothing; to accept it for development or tests, allow simulated "
            "evidence explicitly (--allow-simulated, or allow_simulated=True)"
        )
    max_age = min((p.max_evidence_age for p in pins), default=DEFAULT_MAX_EVIDENCE_AGE)
    own = EnclavePin(
        measurements=parse_measurements(trust.measurements) if trust.measurements else None,
        simulation_root=trust.simulation_root,
        max_evidence_age=max_age,
    )
    first_use: bytes | None = None
    warnings: list[str] = []
    if ev.simulated and own.simulation_root is None:
        if trust.first_use_root is not None:
            own = dataclasses.replace(own, simulation_root=trust.first_use_root)
        elif not any(p.simulation_root is not None for p in pins):
            first_use = simulation_root_of(ev.tee_evidence())
            own = dataclasses.replace(own, simulation_root=first_use)
            warnings.append(_TOFU_WARNING)
    # The client's own options add a pin only where they say something (or nothing else does).
    covered = any((p.simulation_root if ev.simulated else p.measurements) is not None for p in pins)
    named = own.simulation_root if ev.simulated else own.measurements
    checks = [*pins, *([own] if named is not None or not covered else [])]
    tee_evidence = ev.tee_evidence()
    # One fetch from the owner's PCCS for all pins; unreachable raises BackendUnavailable.
    collateral = prefetch(tee_evidence, trust.collateral)
    results = [
        pin.check_fresh(
            tee_evidence,
            key_document=ev.keys.canonical_bytes(),
            created_at=ev.created_at,
            now=now,
            collateral=collateral,
        )
        for pin in checks
    ]
    warnings[:0] = results[-1].warnings
    if ev.simulated:
        warnings.insert(0, SIMULATED_BANNER)
    return VerifiedEnclave(evidence=signed, warnings=tuple(warnings), first_use_root=first_use)


def _check_view(view: EnclaveView, verified: VerifiedEnclave) -> None:
    if verified.digest != view.evidence:
        raise VerificationFailed("the coordinator's enclave view names other evidence")
    if view.party != verified.public.party_id:
        raise VerificationFailed("the coordinator's enclave party differs from the attested key")
    if view.simulated != verified.simulated or view.tee != verified.evidence.statement.tee:
        raise VerificationFailed("the coordinator mislabels the enclave's TEE kind")


def choose_enclave(
    client: Client,
    *,
    pins: Sequence[EnclavePin],
    trust: SealingTrust,
    home: Path,
    now: int,
    required: str | None = None,
    region: str | None = None,
) -> VerifiedEnclave:
    """An admitted enclave that satisfies every pin, fresh now (``required``: only that one).

    ``required`` is the evidence other inputs of the request are already sealed
    to: all inputs of a job go to one enclave. ``region``: only an enclave whose
    attested key document declares it (a region-pinned policy or room). The newest acceptable one wins
    otherwise. Nothing acceptable: :class:`AttestationInvalid` with the reasons.
    """
    known = pinned_simulation_root(home, client.base_url)
    if known is not None and trust.first_use_root is None:
        trust = dataclasses.replace(trust, first_use_root=bytes.fromhex(known))
    listing = client.enclaves()
    views = [v for v in listing.enclaves if required is None or v.evidence == required]
    if not views:
        if required is not None:
            raise AttestationInvalid(
                f"the request's other inputs are sealed to enclave evidence {required}, "
                "which the coordinator no longer lists as admitted (stale or unknown)"
            )
        raise AttestationInvalid(f"the coordinator lists no admitted enclave ({listing.admission})")
    reasons: list[str] = []
    elsewhere = 0
    for view in views:
        try:
            verified = verify_enclave_evidence(view.envelope, pins=pins, trust=trust, now=now)
            _check_view(view, verified)
            declared = verified.evidence.statement.keys.region
            if region is not None and declared != region:
                raise RegionMismatch(
                    f"rule region: the data may only go to region {region!r}; this enclave "
                    f"declares {declared or 'no region'}"
                )
        except BackendUnavailable:
            raise  # the owner's PCCS is down: fail closed, and say so (not "evidence invalid")
        except SealroomError as exc:
            elsewhere += isinstance(exc, RegionMismatch)
            reasons.append(f"{view.evidence[:16]}...: {exc.detail or exc.public_message}")
            continue
        if verified.first_use_root is not None:
            pin_simulation_root(home, client.base_url, verified.first_use_root.hex())
        return verified
    shown = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")
    if elsewhere == len(views):
        raise RegionMismatch(f"no admitted enclave is in region {region!r}: {shown}")
    raise AttestationInvalid(f"no admitted enclave satisfies your pins: {shown}")


def trusted_log_key(client: Client, home: Path) -> str:
    """The coordinator's log key, pinned on first use in ``home`` (a change is refused)."""
    key = client.log_key().verifier_key
    NoteVerifier.from_vkey(key)  # malformed keys fail here, before they are pinned
    pin_log_key(home, client.base_url, key)
    return key
