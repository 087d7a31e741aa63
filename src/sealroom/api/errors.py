"""The error catalog: every :class:`SealroomError` code to an HTTP status and a JSON body.

The body is ``{"error": {"code", "message", "detail"}}`` (:class:`~sealroom.wire.ErrorBody`).
``message`` is the error class's public message; ``detail`` says what to fix and,
like every sealroom error detail, carries no secrets. Anything that is not a
SealroomError is a bug: it answers 500 ``internal`` with nothing from the
exception in the body, and is logged on the server. FastAPI's own errors
(invalid parameters, unknown routes, methods a path does not take) answer
with the same body.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match

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

__all__ = [
    "STATUS_BY_CODE",
    "error_body",
    "error_response",
    "handle_unexpected",
    "install_error_handlers",
    "status_for",
]

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


async def _invalid_parameters(_request: Request, exc: Exception) -> JSONResponse:
    detail = "invalid parameters"
    if isinstance(exc, RequestValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        detail = f"{where}: {first.get('msg', 'invalid')}"
    return JSONResponse(error_body("invalid_input", "the input is not valid", detail), 400)


def _allowed_methods(request: Request) -> str:
    """Every method some route takes on this path (RFC 9110: a 405 names them in ``Allow``)."""
    routes = request.app.router.routes
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in routes):
            allowed.append(method)
    return ", ".join(allowed)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    code = "not_found" if status == 404 else "invalid_input"
    message = "not found" if status == 404 else "the request is not valid"
    detail = str(getattr(exc, "detail", message))
    headers = {"Allow": _allowed_methods(request)} if status == 405 else None
    return JSONResponse(error_body(code, message, detail), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with the catalog's body (500s also via the body-limit middleware)."""
    app.add_exception_handler(SealroomError, handle_sealroom_error)
    app.add_exception_handler(RequestValidationError, _invalid_parameters)
    app.add_exception_handler(StarletteHTTPException, _http_error)
