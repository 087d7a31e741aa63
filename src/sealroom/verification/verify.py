"""Offline verification of a proof bundle: every signature, binding, reference and proof.

:func:`verify_bundle` runs every check in :data:`~.checks.CHECKS` that it can,
records each with a plain-words explanation, and raises :class:`BundleRejected`
(carrying the full report) if any failed. It never returns a verdict that
could be ignored: returning at all means every check passed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sealroom.errors import SealroomError, VerificationFailed
from sealroom.statements import ReleasedOutput
from sealroom.verification.bundle import ProofBundle
from sealroom.verification.checks import (
    CHECKS,
    Context,
    NamedCheck,
    NotEstablished,
    checks_for,
)
from sealroom.verification.trust import TrustPolicy

__all__ = [
    "BundleRejected",
    "Check",
    "TrustPolicy",
    "VerificationReport",
    "run_checks",
    "verdict",
    "verify_bundle",
]


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: a check's name, whether it passed, and why in plain words."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    checks: tuple[Check, ...]
    warnings: tuple[str, ...]
    simulated: bool
    # The region the enclave's attested key document declares (None: none declared).
    region: str | None = None

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON; ``region`` only when the enclave declares one (so reports of
        bundles without a region keep their exact form)."""
        out: dict[str, Any] = {
            "verified": not self.failures,
            "simulated": self.simulated,
            "warnings": list(self.warnings),
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks
            ],
        }
        if self.region is not None:
            out["region"] = self.region
        return out


def verdict(report: VerificationReport) -> str:
    """The report's last line in plain words, the same wherever a report is shown (the CLI,
    the public verifier page): VERIFIED only when every check passed."""
    total, failed = len(report.checks), len(report.failures)
    if failed or not total:
        return f"NOT VERIFIED: {failed} of {total} checks failed."
    label = " (simulated TEE)" if report.simulated else ""
    return f"VERIFIED{label}: all {total} checks passed."


class BundleRejected(VerificationFailed):
    """At least one check failed; ``report`` says which and why."""

    code = "bundle_rejected"
    public_message = "the proof bundle did not verify"

    def __init__(self, report: VerificationReport) -> None:
        self.report = report
        names = ", ".join(c.name for c in report.failures)
        super().__init__(f"failed checks: {names}")

    def diagnostics(self) -> str:
        lines = [super().diagnostics()]
        lines += [f"  - {c.name}: {c.detail}" for c in self.report.failures]
        return "\n".join(lines)


def verify_bundle(
    bundle: ProofBundle,
    *,
    trust: TrustPolicy,
    outputs: Sequence[ReleasedOutput] = (),
) -> VerificationReport:
    """Verify everything in ``bundle``; return the report, or raise :class:`BundleRejected`.

    ``outputs`` are released outputs to check besides those the bundle carries.
    """
    context = Context(bundle=bundle, trust=trust, outputs=(*bundle.outputs, *outputs))
    report = run_checks(context, checks_for(trust))
    if report.failures or not report.checks:
        raise BundleRejected(report)
    return report


def run_checks(context: Context, checks: Sequence[NamedCheck] = CHECKS) -> VerificationReport:
    """Run ``checks`` in order, each on what the ones before it established; record, not raise.

    A failed check is recorded and the run goes on, so the report names every
    problem; the checks that depend on it are skipped. A check skipped with no
    failure before it (only possible if ``checks`` is out of order) is recorded
    as failed, so a skip can never let a bundle pass.
    """
    results: list[Check] = []
    warnings: list[str] = []
    for named in checks:
        for name, ctx in _instances(named, context):
            try:
                passed = named.run(ctx)
            except NotEstablished as missing:
                if all(r.passed for r in results):
                    results.append(
                        Check(name, False, f"not run: no earlier check established the {missing}")
                    )
                continue
            except SealroomError as exc:
                results.append(Check(name, False, exc.detail or exc.public_message))
                continue
            results.append(Check(name, True, passed.detail))
            warnings.extend(passed.warnings)
            if passed.context is not None:
                context = passed.context
    # Unknown evidence is reported as simulated: nothing shows a real TEE was involved.
    simulated = context.evidence.statement.simulated if context.evidence is not None else True
    region = context.evidence.statement.keys.region if context.evidence is not None else None
    return VerificationReport(tuple(results), tuple(warnings), simulated, region)


def _instances(named: NamedCheck, context: Context) -> Iterator[tuple[str, Context]]:
    if named.applies is not None and not named.applies(context):
        return
    if not named.per_output:
        yield named.name, context
        return
    for output in context.outputs:
        yield named.name.format(recipient=output.recipient[:12]), replace(context, output=output)
