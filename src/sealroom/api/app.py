"""The coordinator's HTTP API (docs/http-api.md): FastAPI app factory, routes, auth.

No globals: :func:`create_app` builds the engine, runs migrations, and closes
over one :class:`~sealroom.coordinator.service.Coordinator`. Signed calls are
checked on the raw body bytes and the raw request target before anything is
parsed; body sizes are enforced while the body is read.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sealroom import __version__
from sealroom.api.errors import (
    error_body,
    error_response,
    handle_sealroom_error,
    handle_unexpected,
)
from sealroom.api.schemas import install_openapi
from sealroom.computations.registry import Registry
from sealroom.coordinator.relay import MAX_MESSAGE, Relay
from sealroom.coordinator.service import Coordinator, Stored
from sealroom.crypto.keys import PartyId, PublicIdentity
from sealroom.crypto.request_signing import parse_party, verify_request
from sealroom.errors import BodyTooLarge, InvalidInput, SealroomError, UnsupportedMediaType
from sealroom.statements.canonical import parse_json_strict
from sealroom.storage.engine import create_engine
from sealroom.storage.migrate import upgrade
from sealroom.storage.search import SearchQuery

__all__ = ["MAX_JSON_BODY", "MAX_SEALED_BODY", "create_app"]

MAX_JSON_BODY = 1 << 20
MAX_SEALED_BODY = 64 << 20
_UPLOAD_PATH = re.compile(r"^/v1/requests/[^/]+/inputs/[^/]+$")
_RELAY_PATH = re.compile(r"^/v1/sessions/[^/]+/messages$")
T = TypeVar("T")


def _limit_for(scope: Scope) -> int:
    if scope["method"] == "PUT" and _UPLOAD_PATH.match(scope["path"]):
        return MAX_SEALED_BODY
    if scope["method"] == "POST" and _RELAY_PATH.match(scope["path"]):
        return MAX_MESSAGE
    return MAX_JSON_BODY


class BodyLimit:
    """Refuse bodies over the route's limit: by Content-Length up front, else while reading.

    Also the last line of defence for unexpected exceptions (a clean 500).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = _limit_for(scope)
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                response = error_response(
                    "body_too_large", f"the body exceeds the limit of {limit} bytes"
                )
                await response(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(f"the body exceeds the limit of {limit} bytes")
            return message

        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracking)
        except Exception as exc:
            # A bug: answer 500 "internal" (logged, no internals) and keep the server serving.
            if started:
                raise
            response = await handle_unexpected(Request(scope), exc)
            await response(scope, receive, send)


def _target(request: Request) -> str:
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    path = raw.decode("latin-1")
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


_log = logging.getLogger("sealroom.api")


def _warm(coordinator: Coordinator) -> None:
    try:
        coordinator.warm_discovery()
    except Exception:  # a failure here only costs the first search its load time
        _log.exception("warming the discovery index failed")


def create_app(
    *,
    db_url: str,
    registry: Registry,
    clock: Callable[[], int] = lambda: int(time.time()),
    log_origin: str = "sealroom.local/log",
    lease_seconds: int = 300,
) -> FastAPI:
    """The coordinator app on ``db_url`` (migrated to head on creation)."""
    engine = create_engine(db_url)
    upgrade(engine)
    coordinator = Coordinator(
        engine=engine, registry=registry, log_origin=log_origin, lease_seconds=lease_seconds
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Warm the discovery index off the event loop; searches meanwhile wait for its lock.
        warm = threading.Thread(target=_warm, args=(coordinator,), name="discovery-warmup")
        warm.start()
        yield
        warm.join()
        engine.dispose()

    app = FastAPI(
        title="sealroom coordinator",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    relay = Relay(engine=engine)
    app.state.coordinator = coordinator
    install_openapi(app)
    app.add_exception_handler(SealroomError, handle_sealroom_error)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        detail = "invalid parameters"
        if isinstance(exc, RequestValidationError) and exc.errors():
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            detail = f"{where}: {first.get('msg', 'invalid')}"
        return JSONResponse(error_body("invalid_input", "the input is not valid", detail), 400)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        code = "not_found" if status == 404 else "invalid_input"
        message = "not found" if status == 404 else "the request is not valid"
        detail = str(getattr(exc, "detail", message))
        return JSONResponse(error_body(code, message, detail), status_code=status)

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(BodyLimit)

    async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_in_threadpool(fn, *args, **kwargs)

    async def authenticate(
        request: Request,
        *,
        keys: Callable[[bytes], PublicIdentity] | None = None,
        content_type: str | None = "application/json",
    ) -> tuple[PartyId, bytes]:
        """Check the request signature over the raw body; return (caller, body)."""
        body = await request.body()
        if body and content_type is not None:
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != content_type:
                raise UnsupportedMediaType(f"send the body as {content_type}")
        party = parse_party(request.headers)
        now = clock()
        signer = keys(body) if keys is not None else await call(coordinator.public_identity, party)
        signed = await call(
            verify_request,
            request.headers,
            method=request.method,
            target=_target(request),
            body=body,
            signer=signer,
            now=now,
            nonces=coordinator.nonces,
        )
        return signed.party, body

    def parse_body(body: bytes) -> dict[str, Any]:
        if not body:
            raise InvalidInput("a JSON object body is required")
        value = parse_json_strict(body, max_size=MAX_JSON_BODY, what="request body")
        if not isinstance(value, dict):
            raise InvalidInput("the request body must be a JSON object")
        return value

    def stored(result: Stored) -> JSONResponse:
        return JSONResponse(result.view, status_code=201 if result.created else 200)

    async def signed_json(
        request: Request,
        action: Callable[..., Any],
        *args: Any,
        keys: Callable[[dict[str, Any]], PublicIdentity] | None = None,
    ) -> Any:
        def body_keys(raw: bytes) -> PublicIdentity:
            assert keys is not None
            return keys(parse_body(raw))

        caller, body = await authenticate(request, keys=body_keys if keys else None)
        return await call(action, *args, parse_body(body), caller=caller, now=clock())

    # --- service ---------------------------------------------------------------------

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return await call(coordinator.health)

    @app.get("/v1/computations")
    async def computations() -> dict[str, Any]:
        return coordinator.computations()

    # --- parties ---------------------------------------------------------------------

    @app.post("/v1/parties", status_code=201)
    async def register_party(request: Request) -> JSONResponse:
        return stored(
            await signed_json(request, coordinator.register_party, keys=coordinator.party_keys)
        )

    @app.get("/v1/parties/{party}")
    async def get_party(party: str) -> dict[str, Any]:
        return await call(coordinator.get_party, party)

    # --- log -------------------------------------------------------------------------

    @app.get("/v1/log/checkpoint", response_class=PlainTextResponse)
    async def log_checkpoint() -> PlainTextResponse:
        return PlainTextResponse(await call(coordinator.checkpoint))

    @app.get("/v1/log/key")
    async def log_key() -> dict[str, Any]:
        return coordinator.log_key()

    @app.get("/v1/log/entries/{index}")
    async def log_entry(index: int) -> dict[str, Any]:
        return await call(coordinator.log_entry, index)

    @app.get("/v1/log/inclusion")
    async def log_inclusion(index: int, size: int) -> dict[str, Any]:
        return await call(coordinator.inclusion, index, size)

    @app.get("/v1/log/consistency")
    async def log_consistency(first: int, second: int) -> dict[str, Any]:
        return await call(coordinator.consistency, first, second)

    # --- policies --------------------------------------------------------------------

    @app.post("/v1/policies", status_code=201)
    async def put_policy(request: Request) -> JSONResponse:
        return stored(await signed_json(request, coordinator.put_policy))

    @app.get("/v1/policies/{digest}")
    async def get_policy(digest: str) -> dict[str, Any]:
        return await call(coordinator.get_policy, digest)

    # --- datasets and discovery ------------------------------------------------------

    @app.post("/v1/datasets", status_code=201)
    async def publish(request: Request) -> JSONResponse:
        return stored(await signed_json(request, coordinator.publish_dataset))

    @app.get("/v1/datasets")
    async def list_datasets(
        owner: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> dict[str, Any]:
        return await call(coordinator.list_datasets, owner=owner, limit=limit, cursor=cursor)

    @app.get("/v1/datasets/{dataset}")
    async def get_dataset(dataset: str) -> dict[str, Any]:
        return await call(coordinator.get_dataset, dataset)

    @app.post("/v1/datasets/{dataset}/withdraw")
    async def withdraw_dataset(dataset: str, request: Request) -> dict[str, Any]:
        result: dict[str, Any] = await signed_json(request, coordinator.withdraw_dataset, dataset)
        return result

    @app.get("/v1/search")
    async def search(
        q: str | None = None,
        keyword: list[str] = Query(default=[]),  # noqa: B008
        owner: str | None = None,
        min_rows: int | None = None,
        max_rows: int | None = None,
        from_: int | None = Query(default=None, alias="from"),
        to: int | None = None,
        similar_to: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        query = SearchQuery(
            q=q,
            keywords=tuple(keyword),
            owner=owner,
            min_rows=min_rows,
            max_rows=max_rows,
            time_from=from_,
            time_to=to,
            similar_to=similar_to,
            limit=limit,
            cursor=cursor,
        )
        return await call(coordinator.search, query)

    # --- requests --------------------------------------------------------------------

    @app.post("/v1/requests", status_code=201)
    async def create_request(request: Request) -> JSONResponse:
        return stored(await signed_json(request, coordinator.create_request))

    @app.post("/v1/compute/keyword-overlap")
    async def keyword_overlap(request: Request) -> JSONResponse:
        return stored(await signed_json(request, coordinator.keyword_overlap))

    @app.get("/v1/requests")
    async def list_requests(
        request: Request, role: str | None = None, status: str | None = None
    ) -> dict[str, Any]:
        caller, _ = await authenticate(request)
        return await call(
            coordinator.list_requests, caller=caller, role=role, status=status, now=clock()
        )

    @app.get("/v1/inbox")
    async def inbox(request: Request) -> dict[str, Any]:
        caller, _ = await authenticate(request)
        return await call(coordinator.inbox, caller=caller, now=clock())

    @app.get("/v1/requests/{rid}")
    async def get_request(rid: str, request: Request) -> dict[str, Any]:
        caller, _ = await authenticate(request)
        return await call(coordinator.get_request, rid, caller=caller, now=clock())

    @app.post("/v1/requests/{rid}/approvals")
    async def approve(rid: str, request: Request) -> dict[str, Any]:
        result: dict[str, Any] = await signed_json(request, coordinator.add_approval, rid)
        return result

    @app.put("/v1/requests/{rid}/inputs/{dataset}")
    async def upload(rid: str, dataset: str, request: Request) -> dict[str, Any]:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/octet-stream":
            raise UnsupportedMediaType("send the sealed bytes as application/octet-stream")
        caller, body = await authenticate(request, content_type="application/octet-stream")
        return await call(
            coordinator.upload_input,
            rid,
            dataset,
            body,
            enclave=request.headers.get("sealroom-enclave"),
            caller=caller,
            now=clock(),
        )

    @app.post("/v1/requests/{rid}/withdraw")
    async def withdraw_request(rid: str, request: Request) -> dict[str, Any]:
        result: dict[str, Any] = await signed_json(request, coordinator.withdraw_request, rid)
        return result

    @app.get("/v1/requests/{rid}/result")
    async def result(rid: str, request: Request) -> dict[str, Any]:
        caller, _ = await authenticate(request)
        return await call(coordinator.get_result, rid, caller=caller, now=clock())

    @app.get("/v1/requests/{rid}/bundle")
    async def bundle(rid: str, request: Request) -> dict[str, Any]:
        caller, _ = await authenticate(request)
        return await call(coordinator.bundle, rid, caller=caller, now=clock())

    # --- enclaves and jobs -----------------------------------------------------------

    @app.post("/v1/enclaves", status_code=201)
    async def register_enclave(request: Request) -> JSONResponse:
        return stored(
            await signed_json(request, coordinator.register_enclave, keys=coordinator.evidence_keys)
        )

    @app.get("/v1/enclave")
    async def current_enclave() -> dict[str, Any]:
        return await call(coordinator.current_enclave)

    @app.post("/v1/jobs/claim")
    async def claim(request: Request) -> Response:
        caller, _ = await authenticate(request)
        job = await call(coordinator.claim_job, caller=caller, now=clock())
        if job is None:
            return Response(status_code=204)
        return JSONResponse(job)

    @app.get("/v1/jobs/{rid}/inputs/{dataset}")
    async def job_input(rid: str, dataset: str, request: Request) -> Response:
        caller, _ = await authenticate(request)
        data = await call(coordinator.job_input, rid, dataset, caller=caller, now=clock())
        return Response(content=data, media_type="application/octet-stream")

    @app.post("/v1/jobs/{rid}/complete")
    async def complete(rid: str, request: Request) -> dict[str, Any]:
        result: dict[str, Any] = await signed_json(request, coordinator.complete_job, rid)
        return result

    @app.post("/v1/jobs/{rid}/fail")
    async def fail(rid: str, request: Request) -> dict[str, Any]:
        result: dict[str, Any] = await signed_json(request, coordinator.fail_job, rid)
        return result

    # --- relay for protocols run between parties -------------------------------------

    @app.post("/v1/sessions", status_code=201)
    async def create_session(request: Request) -> JSONResponse:
        return stored(await signed_json(request, relay.create_session))

    @app.get("/v1/sessions")
    async def list_sessions(request: Request) -> dict[str, Any]:
        caller, _ = await authenticate(request)
        return await call(relay.list_sessions, caller=caller, now=clock())

    @app.get("/v1/sessions/{sid}")
    async def get_session(sid: str, request: Request) -> dict[str, Any]:
        caller, _ = await authenticate(request)
        return await call(relay.get_session, sid, caller=caller, now=clock())

    @app.post("/v1/sessions/{sid}/messages", status_code=201)
    async def post_message(sid: str, request: Request, to: str = Query(...)) -> dict[str, Any]:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/octet-stream":
            raise UnsupportedMediaType("send the sealed message as application/octet-stream")
        caller, body = await authenticate(request, content_type="application/octet-stream")
        return await call(relay.post_message, sid, to, body, caller=caller, now=clock())

    @app.get("/v1/sessions/{sid}/messages")
    async def next_message(
        sid: str, request: Request, after: int = Query(-1, ge=-1, le=2**62)
    ) -> Response:
        caller, _ = await authenticate(request)
        found = await call(relay.next_message, sid, after=after, caller=caller, now=clock())
        if found is None:
            return Response(status_code=204)
        index, sender, body = found
        return Response(
            content=body,
            media_type="application/octet-stream",
            headers={"sealroom-index": str(index), "sealroom-sender": sender},
        )

    return app
