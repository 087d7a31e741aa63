"""Verification of Intel TDX evidence: DCAP quote + collateral, TCB policy, measurements.

The order of checks is fixed and every failure names its check:

1. evidence kind: a TDX quote, and not simulated unless explicitly allowed;
2. quote framing (:mod:`sealroom.attestation.quote_format`);
3. DCAP: quote signature, QE identity, PCK chain and CRLs with dcap-qvl, *at the
   given time* — collateral has a validity window, so the same evidence
   verifies on one day and not on another;
4. TCB status and advisories against :class:`DcapPolicy`;
5. TD attributes (no debug TD) and measurements against the allowlist;
6. RTMR3 replay from the event log, digests recomputed from payloads;
7. the compose hash from the replayed event log, against the allowlist and
   against ``mr_config_id`` when that carries one;
8. key binding: ``report_data == report_data_for(key_document)``.

Key binding comes last on purpose: a genuine quote that someone replays
passes everything up to it, so a "key binding" failure also tells a reader
that every earlier check held.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

import dcap_qvl

from sealroom.attestation.checks import check_key_binding, require_unix_time
from sealroom.attestation.evidence import TeeEvidence, VerifiedEvidence
from sealroom.attestation.quote_format import check_quote_framing
from sealroom.attestation.rtmr import check_rtmr3, parse_event_log, runtime_event_payload
from sealroom.errors import AttestationInvalid, InvalidInput

__all__ = [
    "KNOWN_TCB_STATUSES",
    "DcapPolicy",
    "DcapQuoteResult",
    "DcapVerifier",
    "MeasurementAllowlist",
    "TdReport",
    "verify_dcap_quote",
]

KNOWN_TCB_STATUSES = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
        "Revoked",
    }
)
_NEVER_ACCEPTABLE = frozenset({"Revoked"})
_MR_SIZE = 48
_COMPOSE_HASH_SIZE = 32
_MR_CONFIG_ID_V1 = 0x01
_TD_ATTRIBUTES_DEBUG = 0x01
_UNSAFE_ANY_WARNING = (
    "UNSAFE: the measurement allowlist accepts any measurement "
    "(MeasurementAllowlist.unsafe_any()); this evidence says nothing about which code runs"
)
_SIMULATED_WARNING = (
    "SIMULATED TEE: evidence from provider {provider!r} is marked simulated (a replayed "
    "or software quote, not this process in a real TEE); accepted only because the "
    "verifier was built with allow_simulated=True"
)


# --------------------------------------------------------------------- policy


def _hex_set(values: Any, *, name: str, size: int) -> frozenset[str]:
    if isinstance(values, str | bytes) or not isinstance(values, frozenset | set | tuple | list):
        raise InvalidInput(f"allowlist {name}: expected a set of hex strings")
    normalised = set()
    for value in values:
        if not isinstance(value, str):
            raise InvalidInput(f"allowlist {name}: values must be hex strings")
        lowered = value.lower()
        try:
            raw = bytes.fromhex(lowered)
        except ValueError as exc:
            raise InvalidInput(f"allowlist {name}: {value!r} is not hex") from exc
        if len(raw) != size or raw.hex() != lowered:
            raise InvalidInput(f"allowlist {name}: {value!r} is not {size} bytes of hex")
        normalised.add(lowered)
    return frozenset(normalised)


@dataclass(frozen=True, slots=True)
class MeasurementAllowlist:
    """Acceptable measurement values (hex). An empty set accepts nothing: fail closed.

    ``mrtd`` and ``rtmr0``..``rtmr2`` pin the firmware, kernel and OS image;
    ``compose_hash`` (from the RTMR3 event log) pins the application;
    ``mr_config_id`` is what dstack puts in the TD's config id (zero, or
    ``0x01 || compose_hash`` padded). RTMR3 itself is not listed: it also
    measures per-instance values, so it is replayed instead.
    """

    mrtd: frozenset[str] = frozenset()
    rtmr0: frozenset[str] = frozenset()
    rtmr1: frozenset[str] = frozenset()
    rtmr2: frozenset[str] = frozenset()
    mr_config_id: frozenset[str] = frozenset()
    compose_hash: frozenset[str] = frozenset()
    # Only for tests and development; see unsafe_any().
    unsafe_allow_any: bool = False

    def __post_init__(self) -> None:
        for name in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "mr_config_id"):
            object.__setattr__(self, name, _hex_set(getattr(self, name), name=name, size=_MR_SIZE))
        object.__setattr__(
            self,
            "compose_hash",
            _hex_set(self.compose_hash, name="compose_hash", size=_COMPOSE_HASH_SIZE),
        )
        if not isinstance(self.unsafe_allow_any, bool):
            raise InvalidInput("unsafe_allow_any must be a boolean")
        if self.unsafe_allow_any and any(
            getattr(self, name)
            for name in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "mr_config_id", "compose_hash")
        ):
            raise InvalidInput("an unsafe_any() allowlist cannot also list values")

    @classmethod
    def unsafe_any(cls) -> MeasurementAllowlist:
        """Accept every measurement. The verified evidence then carries a loud warning."""
        return cls(unsafe_allow_any=True)

    def check(self, name: str, value_hex: str) -> None:
        if self.unsafe_allow_any:
            return
        allowed: frozenset[str] = getattr(self, name)
        if not allowed:
            raise AttestationInvalid(
                f"measurement {name}: the allowlist is empty, so nothing is trusted (fail closed)"
            )
        if value_hex not in allowed:
            raise AttestationInvalid(f"measurement {name} {value_hex} is not in the allowlist")


@dataclass(frozen=True, slots=True)
class DcapPolicy:
    """Which TCB states and which measurements a relying party accepts.

    Only ``UpToDate`` by default. Accepting another status is a statement that
    its known weaknesses are tolerable, so each advisory it comes with must be
    listed in ``allowed_advisory_ids`` too.
    """

    measurements: MeasurementAllowlist = field(default_factory=MeasurementAllowlist)
    accepted_tcb_statuses: frozenset[str] = frozenset({"UpToDate"})
    allowed_advisory_ids: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.measurements, MeasurementAllowlist):
            raise InvalidInput("policy.measurements must be a MeasurementAllowlist")
        for name in ("accepted_tcb_statuses", "allowed_advisory_ids"):
            values = getattr(self, name)
            if isinstance(values, str) or not isinstance(values, frozenset | set | tuple | list):
                raise InvalidInput(f"policy.{name} must be a set of strings")
            if not all(isinstance(value, str) for value in values):
                raise InvalidInput(f"policy.{name} must be a set of strings")
            object.__setattr__(self, name, frozenset(values))
        unknown = self.accepted_tcb_statuses - KNOWN_TCB_STATUSES
        if unknown:
            raise InvalidInput(f"policy: unknown TCB statuses {sorted(unknown)}")
        forbidden = self.accepted_tcb_statuses & _NEVER_ACCEPTABLE
        if forbidden:
            raise InvalidInput(f"policy: TCB status {sorted(forbidden)} can never be accepted")


# ----------------------------------------------------------------- DCAP step


@dataclass(frozen=True, slots=True)
class TdReport:
    """The TD report fields sealroom checks, copied out of dcap-qvl's untyped objects."""

    mr_seam: bytes
    mr_signer_seam: bytes
    td_attributes: bytes
    mrtd: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    rtmr3: bytes
    report_data: bytes

    def measurements(self) -> dict[str, str]:
        """Lowercase-hex measurements, the form allowlists and VerifiedEvidence use."""
        return {
            "mrtd": self.mrtd.hex(),
            "rtmr0": self.rtmr0.hex(),
            "rtmr1": self.rtmr1.hex(),
            "rtmr2": self.rtmr2.hex(),
            "rtmr3": self.rtmr3.hex(),
            "mr_config_id": self.mr_config_id.hex(),
        }


@dataclass(frozen=True, slots=True)
class DcapQuoteResult:
    """A quote that passed framing and dcap-qvl at a given time. Not yet a policy decision."""

    tcb_status: str
    advisory_ids: tuple[str, ...]
    quote_version: int
    # None for SGX quotes, which sealroom never accepts as enclave evidence.
    td_report: TdReport | None


_TD_FIELDS = {
    "mr_seam": "mr_seam",
    "mr_signer_seam": "mr_signer_seam",
    "td_attributes": "td_attributes",
    "mrtd": "mr_td",
    "mr_config_id": "mr_config_id",
    "mr_owner": "mr_owner",
    "mr_owner_config": "mr_owner_config",
    "rtmr0": "rt_mr0",
    "rtmr1": "rt_mr1",
    "rtmr2": "rt_mr2",
    "rtmr3": "rt_mr3",
    "report_data": "report_data",
}


def _bytes_attr(obj: Any, name: str) -> bytes:
    value = getattr(obj, name, None)
    if not isinstance(value, bytes):
        raise AttestationInvalid(f"DCAP: parsed quote lacks {name}")
    return value


def _td_report(quote: bytes) -> TdReport:
    try:
        parsed: Any = dcap_qvl.parse_quote(quote)
    except ValueError as exc:
        raise AttestationInvalid(f"DCAP: quote does not parse: {exc}") from exc
    report = parsed.report
    values = {ours: _bytes_attr(report, theirs) for ours, theirs in _TD_FIELDS.items()}
    return TdReport(**values)


def _run_dcap_qvl(quote: bytes, collateral_json: str, at_time: int) -> tuple[str, tuple[str, ...]]:
    """dcap-qvl's verdict on quote + collateral at ``at_time``: (TCB status, advisory ids)."""
    try:
        collateral: Any = dcap_qvl.QuoteCollateralV3.from_json(collateral_json)
    except (TypeError, ValueError) as exc:
        raise AttestationInvalid(f"DCAP: collateral does not parse: {exc}") from exc
    try:
        verified: Any = dcap_qvl.verify(quote, collateral, at_time)
    except (TypeError, ValueError, OverflowError) as exc:
        detail = " ".join(str(exc).split())
        raise AttestationInvalid(
            f"DCAP: quote verification failed at unix time {at_time}: {detail}"
        ) from exc
    status = verified.status
    advisories = verified.advisory_ids
    if not isinstance(status, str) or not isinstance(advisories, list):
        raise AttestationInvalid("DCAP: dcap-qvl returned an unexpected result")
    if not all(isinstance(advisory, str) for advisory in advisories):
        raise AttestationInvalid("DCAP: dcap-qvl returned an unexpected advisory list")
    return status, tuple(advisories)


def verify_dcap_quote(quote: bytes, collateral_json: str, *, at_time: int) -> DcapQuoteResult:
    """Check framing and run dcap-qvl at ``at_time``; raise :class:`AttestationInvalid` on failure.

    This is only the cryptographic half: it says nothing about TCB policy,
    measurements, the event log or key binding. Use :class:`DcapVerifier`.
    """
    require_unix_time(at_time)
    if not isinstance(collateral_json, str) or not collateral_json:
        raise AttestationInvalid("DCAP: no collateral supplied")
    frame = check_quote_framing(quote)
    status, advisories = _run_dcap_qvl(quote, collateral_json, at_time)
    return DcapQuoteResult(
        tcb_status=status,
        advisory_ids=advisories,
        quote_version=frame.version,
        td_report=_td_report(quote) if frame.is_tdx else None,
    )


# ------------------------------------------------------------------ verifier


class DcapVerifier:
    """An :class:`~sealroom.attestation.evidence.EvidenceVerifier` for Intel TDX (dstack)."""

    __slots__ = ("_allow_simulated", "_policy")

    def __init__(self, policy: DcapPolicy, *, allow_simulated: bool = False) -> None:
        if not isinstance(policy, DcapPolicy):
            raise InvalidInput("policy must be a DcapPolicy")
        self._policy = policy
        self._allow_simulated = allow_simulated is True

    @property
    def policy(self) -> DcapPolicy:
        return self._policy

    def verify_at_time(
        self, evidence: TeeEvidence, *, key_document: bytes, at_time: int
    ) -> VerifiedEvidence:
        require_unix_time(at_time)
        if not isinstance(key_document, bytes):
            raise InvalidInput("key_document must be bytes")
        warnings: list[str] = []
        if evidence.tee != "tdx":
            raise AttestationInvalid(
                f"DCAP verifier: evidence is tee {evidence.tee!r}, not 'tdx'; "
                "software-simulated evidence is verified by SimulatedVerifier"
            )
        if evidence.simulated:
            if not self._allow_simulated:
                raise AttestationInvalid(
                    f"simulated TEE evidence is not trusted: provider {evidence.provider!r} "
                    "marked it simulated (a replayed or software quote); to accept it for "
                    "development or tests, build DcapVerifier(policy, allow_simulated=True)"
                )
            warnings.append(_SIMULATED_WARNING.format(provider=evidence.provider))

        result = verify_dcap_quote(evidence.quote, evidence.collateral, at_time=at_time)
        self._check_tcb(result, warnings)
        if result.td_report is None:
            raise AttestationInvalid("DCAP: the quote is an SGX quote, not a TDX quote")
        td = result.td_report
        _check_td_attributes(td)

        allowlist = self._policy.measurements
        if allowlist.unsafe_allow_any:
            warnings.append(_UNSAFE_ANY_WARNING)
        measurements = td.measurements()
        for name in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "mr_config_id"):
            allowlist.check(name, measurements[name])

        events = parse_event_log(evidence.event_log)
        check_rtmr3(events, td.rtmr3)
        compose_hash = runtime_event_payload(events, "compose-hash")
        if compose_hash is None:
            if not allowlist.unsafe_allow_any:
                raise AttestationInvalid(
                    "compose hash: the RTMR3 event log has no compose-hash event"
                )
        else:
            _check_compose_hash(compose_hash, td.mr_config_id, allowlist)
            measurements["compose_hash"] = compose_hash.hex()
        app_id = runtime_event_payload(events, "app-id")
        if app_id is not None:
            measurements["app_id"] = app_id.hex()

        check_key_binding(td.report_data, key_document)
        return VerifiedEvidence(
            tee="tdx",
            simulated=evidence.simulated,
            provider=evidence.provider,
            report_data=td.report_data,
            verified_at=at_time,
            tcb_status=result.tcb_status,
            advisory_ids=result.advisory_ids,
            measurements=measurements,
            warnings=tuple(warnings),
        )

    def _check_tcb(self, result: DcapQuoteResult, warnings: list[str]) -> None:
        policy = self._policy
        if result.tcb_status not in policy.accepted_tcb_statuses:
            raise AttestationInvalid(
                f"TCB status {result.tcb_status!r} is not accepted by the policy "
                f"(accepted: {sorted(policy.accepted_tcb_statuses)}; "
                f"advisories: {list(result.advisory_ids)})"
            )
        unlisted = [a for a in result.advisory_ids if a not in policy.allowed_advisory_ids]
        if unlisted:
            raise AttestationInvalid(
                f"TCB advisories {unlisted} are not in the policy's advisory allowlist"
            )
        if result.tcb_status != "UpToDate":
            warnings.append(
                f"TCB status {result.tcb_status!r} accepted by policy "
                f"with advisories {list(result.advisory_ids)}"
            )


def _check_td_attributes(td: TdReport) -> None:
    """Refuse debug TDs (the host can read their memory) and non-Intel TDX modules."""
    if not td.td_attributes or td.td_attributes[0] & _TD_ATTRIBUTES_DEBUG:
        raise AttestationInvalid("TD attributes: the TD runs in debug mode")
    if any(td.mr_signer_seam):
        raise AttestationInvalid("TD attributes: the TDX module is not signed by Intel")


def _check_compose_hash(
    compose_hash: bytes, mr_config_id: bytes, allowlist: MeasurementAllowlist
) -> None:
    if len(compose_hash) != _COMPOSE_HASH_SIZE:
        raise AttestationInvalid(
            f"compose hash: must be {_COMPOSE_HASH_SIZE} bytes, got {len(compose_hash)}"
        )
    # dstack's "v1" config id is 0x01 || compose_hash || zeros: when the TD was
    # launched with one, it must name the same application as RTMR3 does.
    if mr_config_id and mr_config_id[0] == _MR_CONFIG_ID_V1:
        expected = bytes([_MR_CONFIG_ID_V1]) + compose_hash
        expected += bytes(len(mr_config_id) - len(expected))
        if not hmac.compare_digest(mr_config_id, expected):
            raise AttestationInvalid(
                "compose hash: mr_config_id names a different compose hash than the event log"
            )
    allowlist.check("compose_hash", compose_hash.hex())
