"""Checks shared by every verifier: the key binding and the verification time.

Kept in one place so that the simulated and the DCAP verifier cannot drift
apart on what "bound to this key document" means.
"""

from __future__ import annotations

import hmac

from sealroom.attestation.evidence import report_data_for
from sealroom.errors import AttestationInvalid, InvalidInput

__all__ = ["REPORT_DATA_SIZE", "check_key_binding", "require_unix_time"]

REPORT_DATA_SIZE = 64
_MAX_UNIX_TIME = (1 << 63) - 1


def check_key_binding(report_data: bytes, key_document: bytes) -> None:
    """Raise unless ``report_data`` is exactly ``report_data_for(key_document)``.

    All 64 bytes are compared, in constant time: a TEE report that binds only a
    prefix, or a padded shorter hash, must not pass.
    """
    if not isinstance(key_document, bytes):
        raise InvalidInput("key_document must be bytes")
    if not isinstance(report_data, bytes) or len(report_data) != REPORT_DATA_SIZE:
        size = len(report_data) if isinstance(report_data, bytes) else "non-bytes"
        raise AttestationInvalid(
            f"key binding: report_data must be {REPORT_DATA_SIZE} bytes, got {size}"
        )
    if not hmac.compare_digest(report_data, report_data_for(key_document)):
        raise AttestationInvalid(
            "key binding: report_data is not SHA-512('sealroom-enclave-v1:' || key document); "
            "this evidence does not attest the given key document"
        )


def require_unix_time(at_time: int) -> int:
    """Validate an explicit verification time (verifiers never read the clock)."""
    if isinstance(at_time, bool) or not isinstance(at_time, int):
        raise InvalidInput(f"at_time must be an integer unix time, got {type(at_time).__name__}")
    if not 0 <= at_time <= _MAX_UNIX_TIME:
        raise InvalidInput(f"at_time {at_time} is out of range")
    return at_time
