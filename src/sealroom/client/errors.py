"""Mapping the coordinator's error catalog back onto sealroom's exception tree.

A caller of the SDK catches the same classes it would catch in-process
(``NotFound``, ``Conflict``, ...), carrying the server's ``detail``. Codes the
catalog has but the core tree lacks get small subclasses here, so their
``code`` survives the round trip.
"""

from __future__ import annotations

from sealroom.errors import (
    CATALOG,
    AuthenticationFailed,
    BackendUnavailable,
    BodyTooLarge,
    Conflict,
    InvalidInput,
    NotFound,
    PolicyDenied,
    ProtocolError,
    SealroomError,
    UnsupportedMediaType,
)

__all__ = [
    "BodyTooLarge",
    "ServerError",
    "UnsupportedMediaType",
    "WaitTimeout",
    "error_for",
]


class ServerError(SealroomError):
    """The coordinator failed (a bug on its side); its body never carries internals."""

    code = "internal"
    public_message = "the coordinator failed"


_KNOWN: tuple[type[SealroomError], ...] = (*CATALOG, ServerError)
_BY_CODE: dict[str, type[SealroomError]] = {cls.code: cls for cls in _KNOWN}

_BY_STATUS: dict[int, type[SealroomError]] = {
    400: InvalidInput,
    401: AuthenticationFailed,
    403: PolicyDenied,
    404: NotFound,
    409: Conflict,
    413: BodyTooLarge,
    415: UnsupportedMediaType,
    503: BackendUnavailable,
}


def error_for(status: int, code: str | None, detail: str) -> SealroomError:
    """The exception for an error response; unknown codes fall back on the HTTP status."""
    cls = _BY_CODE.get(code or "")
    if cls is not None:
        return cls(detail)
    fallback = _BY_STATUS.get(status)
    label = f" (server code {code!r})" if code else ""
    if fallback is not None:
        return fallback(detail + label)
    if status >= 500:
        return ServerError(detail + label)
    return ProtocolError(f"unexpected HTTP {status}{label}: {detail}")


class WaitTimeout(SealroomError):
    """A wait for a request's status ran out of time; the request itself is unchanged."""

    code = "timeout"
    public_message = "timed out waiting"
