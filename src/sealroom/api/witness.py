"""The witness's HTTP interface (C2SP tlog-witness), served by ``sealroom witness serve``.

``POST /add-checkpoint`` takes the spec's text body and answers with cosignature lines, or
with the spec's status code for each refusal (400, 403, 404, 409 with the cosigned size as
``text/x.tlog.size``, 422). ``GET /<hex SHA-256 of origin>/checkpoint`` serves the latest
cosigned checkpoint (the monitoring endpoint); ``GET /healthz`` answers ``ok`` (liveness). Bodies are plain text; there is nothing to
authenticate beyond the log's signature on the checkpoint.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sealroom.errors import (
    BackendUnavailable,
    InvalidInput,
    NotFound,
    ProofInvalid,
    SealroomError,
    SignatureInvalid,
)
from sealroom.transparency.witness import (
    MAX_REQUEST_SIZE,
    SIZE_CONTENT_TYPE,
    OldSizeMismatch,
    Witness,
)

__all__ = ["create_witness_app", "status_for"]

_log = logging.getLogger("sealroom.witness")
_NOTE_TYPE = "text/plain; charset=utf-8"

# Most specific first: SignatureInvalid and ProofInvalid are both VerificationFailed.
_STATUS: tuple[tuple[type[SealroomError], int], ...] = (
    (OldSizeMismatch, 409),
    (SignatureInvalid, 403),
    (ProofInvalid, 422),
    (NotFound, 404),
    (InvalidInput, 400),
    (BackendUnavailable, 503),
)


def status_for(exc: SealroomError) -> int:
    """The tlog-witness status code of a refusal."""
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 500)


def _refusal(exc: SealroomError) -> Response:
    if isinstance(exc, OldSizeMismatch):
        # Exactly the spec's type: Starlette would append "; charset=utf-8" to a text/ type.
        return Response(
            f"{exc.size}\n".encode(), status_code=409, headers={"content-type": SIZE_CONTENT_TYPE}
        )
    status = status_for(exc)
    if status == 500:
        _log.error("witness failure: %s", exc.diagnostics())
    return PlainTextResponse(f"{exc.detail or exc.public_message}\n", status_code=status)


async def _body(request: Request) -> bytes | None:
    """The request body, or None once it exceeds the limit (read no further)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_REQUEST_SIZE):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_SIZE:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_witness_app(witness: Witness) -> Starlette:
    """The ASGI app of one witness."""

    async def add_checkpoint(request: Request) -> Response:
        body = await _body(request)
        if body is None:
            return PlainTextResponse(
                f"the request is over {MAX_REQUEST_SIZE} bytes\n", status_code=413
            )
        try:
            lines = await run_in_threadpool(witness.add_checkpoint, body)
        except SealroomError as exc:
            return _refusal(exc)
        return Response(lines, media_type=_NOTE_TYPE)

    async def checkpoint(request: Request) -> Response:
        digest = request.path_params["origin_hash"]
        try:
            note = witness.checkpoint(digest)
        except SealroomError as exc:
            return _refusal(exc)
        return Response(note, media_type=_NOTE_TYPE)

    async def healthz(_request: Request) -> Response:
        """Liveness for orchestrators (Docker healthchecks): the process answers."""
        return PlainTextResponse("ok\n")

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route("/{origin_hash:str}/checkpoint", checkpoint, methods=["GET"]),
        ]
    )
