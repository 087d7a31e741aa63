"""The error catalog: every :class:`SealroomError` code to an HTTP status and a JSON body.

The body is ``{"error": {"code", "message", "detail"}}``. ``message`` is the
error class's public message; ``detail`` says what to fix and, like every
sealroom error detail, carries no secrets. Anything that is not a
SealroomError is a bug: it answers 500 ``internal`` with nothing from the
exception in the body, and is logged on the server.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from sealroom.errors import (
    CATALOG,
    AuthenticationFailed,
    BackendUnavailable,
    BodyTooLarge,
    Conflict,
    NotFound,
    PolicyDenied,
    SealroomError,
    UnsupportedMediaType,
)

__all__ = ["STATUS_BY_CODE", "error_body", "error_response", "status_for"]

_log = logging.getLogger("sealroom.api")

# Most specific first: the first class an error is an instance of gives its status;
# everything else in the catalog (bad input, failed verification, protocol errors) is 400.
_STATUS_BY_CLASS: tuple[tuple[type[SealroomError], int], ...] = (
    (BodyTooLarge, 413),
    (UnsupportedMediaType, 415),
    (AuthenticationFailed, 401),
    (PolicyDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (BackendUnavailable, 503),
)

STATUS_BY_CODE: dict[str, int] = {
    cls.code: next((status for base, status in _STATUS_BY_CLASS if issubclass(cls, base)), 400)
    for cls in CATALOG
} | {SealroomError.code: 500}

_MESSAGES = {cls.code: cls.public_message for cls in CATALOG} | {"internal": "internal error"}


def status_for(code: str) -> int:
    return STATUS_BY_CODE.get(code, 500)


def error_body(code: str, message: str, detail: str | None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "detail": detail or message}}


def error_response(code: str, detail: str | None = None) -> JSONResponse:
    """A catalog error that has no exception class (413, 415, 500)."""
    message = _MESSAGES.get(code, code)
    return JSONResponse(error_body(code, message, detail), status_code=status_for(code))


async def handle_sealroom_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, SealroomError):  # pragma: no cover - registered for SealroomError
        return await handle_unexpected(request, exc)
    if type(exc) is SealroomError or exc.code not in STATUS_BY_CODE:
        _log.error("unmapped error %s on %s %s", exc.code, request.method, request.url.path)
        return error_response("internal", "an unexpected error occurred; it has been logged")
    if isinstance(exc, BackendUnavailable):
        _log.warning("backend unavailable on %s: %s", request.url.path, exc.detail)
        return JSONResponse(
            error_body(exc.code, exc.public_message, "a backend is unavailable; retry later"),
            status_code=503,
        )
    return JSONResponse(
        error_body(exc.code, exc.public_message, exc.detail), status_code=status_for(exc.code)
    )


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response("internal", "an unexpected error occurred; it has been logged")
