"""The CLI's exit codes: one per outcome a script must tell apart, and the table the docs show.

Light on purpose (no sealroom imports beyond the error tree, which is cheap): the
``--help`` epilog and the start-up path read it.
"""

from __future__ import annotations

import enum

from sealroom.errors import SealroomError

__all__ = ["ExitCode", "exit_code_for", "exit_code_for_status", "exit_codes_table"]


class ExitCode(enum.IntEnum):
    """``sealroom``'s exit status. Stable: scripts and agents branch on these numbers."""

    OK = 0
    ERROR = 1
    USAGE = 2
    REQUEST_FAILED = 3
    REQUEST_REJECTED = 4
    REQUEST_ENDED = 5
    TIMED_OUT = 6
    POLICY_DENIED = 7
    VERIFICATION_FAILED = 8
    UNAVAILABLE = 9


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "any other error: invalid input, not found, conflict, not authenticated",
    ExitCode.USAGE: "the command line is wrong: unknown option, missing or malformed argument",
    ExitCode.REQUEST_FAILED: "the request failed: the enclave refused its inputs or the run failed",
    ExitCode.REQUEST_REJECTED: "the request was rejected by an owner",
    ExitCode.REQUEST_ENDED: "the request ended without a result: withdrawn or expired",
    ExitCode.TIMED_OUT: "timed out waiting for a request to end (status --wait --timeout)",
    ExitCode.POLICY_DENIED: "a policy denied the action",
    ExitCode.VERIFICATION_FAILED: "a signature, TEE evidence, proof, commitment or seal did not verify",
    ExitCode.UNAVAILABLE: "the coordinator or another backend cannot be reached (retry later)",
}

_STATUS_CODES: dict[str, ExitCode] = {
    "failed": ExitCode.REQUEST_FAILED,
    "rejected": ExitCode.REQUEST_REJECTED,
    "withdrawn": ExitCode.REQUEST_ENDED,
    "expired": ExitCode.REQUEST_ENDED,
}


_ERROR_CODES: dict[str, ExitCode] = {
    "usage": ExitCode.USAGE,
    "timeout": ExitCode.TIMED_OUT,
    "policy_denied": ExitCode.POLICY_DENIED,
    "verification_failed": ExitCode.VERIFICATION_FAILED,
    "backend_unavailable": ExitCode.UNAVAILABLE,
}


def exit_code_for(exc: SealroomError) -> ExitCode:
    """The exit code for ``exc``: by its catalog code or the nearest base class's (so every
    ``VerificationFailed`` subclass exits 8)."""
    for cls in type(exc).__mro__:
        found = _ERROR_CODES.get(getattr(cls, "code", ""))
        if found is not None:
            return found
    return ExitCode.ERROR


def exit_code_for_status(status: str) -> ExitCode:
    """A request's final status as an exit code (``status --wait``): 0 only for ``completed``."""
    if status == "completed":
        return ExitCode.OK
    return _STATUS_CODES.get(status, ExitCode.ERROR)


def exit_codes_table() -> str:
    """The Markdown table README.md shows (a test keeps the two equal)."""
    lines = ["| code | meaning |", "| --- | --- |"]
    lines += [f"| {int(c)} | {MEANINGS[c]} |" for c in ExitCode]
    return "\n".join(lines)


def exit_codes_epilog() -> str:
    """The same table for ``sealroom --help``."""
    return "Exit codes: " + "; ".join(f"{int(c)} {MEANINGS[c]}" for c in ExitCode) + "."
