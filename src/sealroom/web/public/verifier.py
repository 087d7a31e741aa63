"""The public verifier: a proof bundle in, the report ``sealroom verify`` prints out.

The page runs :func:`sealroom.verification.verify.verify_bundle` with the trust
policy ``sealroom verify`` builds from the same options, and shows its checks,
warnings and :func:`~sealroom.verification.verify.verdict` unchanged, with the
pins it used and the offline command that reproduces the verdict without this server.
A bad file is a REJECTED report naming what is wrong with it (as in the CLI), never an error
page; only a missing or oversized upload is refused before verification.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from sealroom.attestation.pins import parse_simulation_root
from sealroom.errors import InvalidInput, SealroomError
from sealroom.verification.bundle import ProofBundle
from sealroom.verification.trust import trust_policy
from sealroom.verification.verify import (
    BundleRejected,
    Check,
    VerificationReport,
    verdict,
    verify_bundle,
)
from sealroom.wire import MAX_JSON_BODY

__all__ = ["MAX_UPLOAD", "Pins", "Verified", "offline_command", "run_verifier"]

# The whole form (the bundle plus the pins) must fit the coordinator's JSON body limit; a
# larger bundle is verified offline with `sealroom verify` (it reads up to 64 MiB).
MAX_UPLOAD = MAX_JSON_BODY
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Pins:
    """What the reader trusts, as the verifier form says it (empty: not pinned)."""

    allow_simulated: bool = False
    log_key: str = ""
    simulation_root: str = ""
    checkpoint: str = ""

    @classmethod
    def parse(cls, form: dict[str, str]) -> Pins:
        return cls(
            allow_simulated=form.get("allow_simulated", "") == "on",
            log_key=form.get("log_key", "").strip(),
            simulation_root=form.get("simulation_root", "").strip(),
            checkpoint=form.get("checkpoint", "").replace("\r\n", "\n").strip("\n") + "\n"
            if form.get("checkpoint", "").strip()
            else "",
        )


@dataclass(frozen=True, slots=True)
class Verified:
    """One run of the verifier: the report, its verdict line, and how to reproduce it."""

    report: VerificationReport
    verdict: str
    pins: Pins
    command: str
    filename: str

    @property
    def verified(self) -> bool:
        return not self.report.failures and bool(self.report.checks)


def safe_filename(name: str | None) -> str:
    """The uploaded file's base name, reduced to characters a shell shows as they are."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _SAFE_NAME.sub("_", base).strip("._")[:80]
    return cleaned or "bundle.json"


def offline_command(filename: str, pins: Pins) -> str:
    """The ``sealroom verify`` command line that checks the same bundle with the same pins."""
    args = ["sealroom", "verify", filename]
    if pins.allow_simulated:
        args.append("--allow-simulated")
    if pins.log_key:
        args += ["--log-key", pins.log_key]
    if pins.simulation_root:
        args += ["--simulation-root", pins.simulation_root]
    if pins.checkpoint:
        args += ["--checkpoint", "checkpoint.txt"]
    return shlex.join(args)


def _format_failure(exc: SealroomError) -> VerificationReport:
    return VerificationReport(
        checks=(Check("bundle format", False, exc.detail or exc.public_message),),
        warnings=(),
        simulated=False,
    )


def run_verifier(raw: bytes, pins: Pins, filename: str) -> Verified:
    """Verify ``raw`` under ``pins``; raise :class:`InvalidInput` only for unusable pins."""
    try:
        policy = trust_policy(
            allow_simulated=pins.allow_simulated,
            log_key=pins.log_key or None,
            simulation_root=parse_simulation_root(pins.simulation_root)
            if pins.simulation_root
            else None,
            checkpoint=pins.checkpoint or None,
        )
    except SealroomError as exc:
        raise InvalidInput(f"a pin is not usable: {exc.detail or exc.public_message}") from None
    try:
        report = verify_bundle(ProofBundle.from_json(raw), trust=policy)
    except BundleRejected as exc:
        report = exc.report
    except SealroomError as exc:
        report = _format_failure(exc)
    return Verified(
        report=report,
        verdict=verdict(report),
        pins=pins,
        command=offline_command(filename, pins),
        filename=filename,
    )
