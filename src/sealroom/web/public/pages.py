"""The public pages' routes: explorer, dataset card, log browser, entry, verifier.

Each page reads through the same coordinator services the API's public routes
call, so it can show no more than the API shows an unauthenticated caller. Errors
become an HTML page with the error catalog's status and safe public message plus the
error's detail (which, like every sealroom error detail, carries no secrets).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sealroom.api.auth import Api
from sealroom.api.errors import status_for
from sealroom.attestation.simulated import SIMULATED_BANNER
from sealroom.coordinator.service import Coordinator
from sealroom.errors import BodyTooLarge, InvalidInput, ProofInvalid, SealroomError
from sealroom.web.public.explorer import PAGE_SIZE, SearchForm, day, policy_summary
from sealroom.web.public.logview import (
    b64,
    check_consistency,
    check_entry,
    check_held_checkpoint,
    latest_checkpoint,
)
from sealroom.web.public.render import Renderer, asset_response
from sealroom.web.public.verifier import MAX_UPLOAD, Pins, run_verifier, safe_filename

__all__ = ["PAGE_PATHS", "PublicPages", "install_public_pages"]

_log = logging.getLogger("sealroom.web")

PAGE_PATHS = ("/", "/datasets", "/log", "/verify")
LOG_PAGE = 25
MAX_NOTE = 8192  # a checkpoint with a few cosignatures is well under 1 KiB


@dataclass(frozen=True, slots=True)
class PublicPages:
    """What the pages need besides the coordinator: templates and the deployment's pins."""

    renderer: Renderer
    simulation_root: bytes | None


def _coordinator(request: Request) -> Coordinator:
    return cast(Api, request.app.state.api).coordinator


def _pages(request: Request) -> PublicPages:
    return cast(PublicPages, request.app.state.public_pages)


def _error(request: Request, exc: SealroomError) -> Response:
    status = status_for(exc.code)
    if status >= 500:
        _log.warning("public page %s: %s", request.url.path, exc.code)
    return _pages(request).renderer.page(
        "error.html",
        status=status,
        title=exc.public_message,
        message=exc.public_message,
        detail=exc.detail if status < 500 else None,
        active="",
    )


def _guarded(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
    def run(request: Request) -> Response:
        try:
            return handler(request)
        except SealroomError as exc:
            return _error(request, exc)

    return run


router = APIRouter(include_in_schema=False)


def _home(request: Request) -> Response:
    coord = _coordinator(request)
    recent = coord.datasets.search(SearchForm.parse({}).query)
    head = latest_checkpoint(coord.log)
    return _pages(request).renderer.page(
        "home.html",
        title="sealroom",
        active="home",
        recent=recent.items[:6],
        total=recent.total,
        head=head,
        b64=b64,
    )


def _datasets(request: Request) -> Response:
    renderer = _pages(request).renderer
    params = dict(request.query_params)
    try:
        form = SearchForm.parse(params)
    except InvalidInput as exc:
        return renderer.page(
            "datasets.html",
            status=400,
            title="Datasets",
            active="datasets",
            form=None,
            values={k: params.get(k, "") for k in params},
            error=exc.detail or exc.public_message,
            page=None,
            day=day,
        )
    page = _coordinator(request).datasets.search(form.query)
    return renderer.page(
        "datasets.html",
        title="Datasets",
        active="datasets",
        form=form,
        values=form.values,
        error=None,
        page=page,
        day=day,
        page_size=PAGE_SIZE,
        first=form.query.cursor is None,
    )


def _dataset(request: Request) -> Response:
    coord = _coordinator(request)
    view = coord.datasets.get(request.path_params["dataset"])
    summary = None
    if view.policy is not None:
        summary = policy_summary(coord.datasets.get_policy(view.policy).envelope)
    return _pages(request).renderer.page(
        "dataset.html",
        title=view.title,
        active="datasets",
        d=view,
        policy=summary,
        day=day,
    )


def _index(raw: str, what: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInput(f"{what} must be a whole number, got {raw[:24]!r}")
    return int(raw)


def _log_page(request: Request) -> Response:
    coord = _coordinator(request)
    head = latest_checkpoint(coord.log)
    size = head.checkpoint.size
    before_raw = request.query_params.get("before", "")
    before = min(_index(before_raw, "before"), size) if before_raw else size
    start = max(0, before - LOG_PAGE)
    entries = [coord.log.entry(i) for i in range(before - 1, start - 1, -1)]
    consistency = None
    first_raw = request.query_params.get("from", "").strip()
    if first_raw:
        first = _index(first_raw, "from")
        if not 1 <= first <= size:
            raise InvalidInput(f"'from' must be a tree size from 1 to {size}")
        consistency = check_consistency(coord.log, first)
    note = request.query_params.get("note", "")
    held_error = None
    status = 200
    if note.strip():
        if len(note) > MAX_NOTE:
            raise InvalidInput(f"a checkpoint note is at most {MAX_NOTE} characters")
        try:
            consistency = check_held_checkpoint(coord.log, note)
        except ProofInvalid as exc:
            # The reader's own signed evidence against the log: a finding, shown as such.
            held_error = f"FAILED: {exc.detail or exc.public_message}"
            status = 409
        except SealroomError as exc:
            held_error = f"Not a checkpoint of this log: {exc.detail or exc.public_message}"
            status = 400
    return _pages(request).renderer.page(
        "log.html",
        status=status,
        title="Transparency log",
        active="log",
        head=head,
        entries=entries,
        older=start if start > 0 else None,
        newer=min(before + LOG_PAGE, size) if before < size else None,
        consistency=consistency,
        from_value=first_raw,
        note_value=note,
        held_error=held_error,
        b64=b64,
        origin=str(request.base_url).rstrip("/"),
    )


def _entry(request: Request) -> Response:
    index = _index(request.path_params["index"], "the entry index")
    checked = check_entry(_coordinator(request).log, index)
    return _pages(request).renderer.page(
        "entry.html",
        title=f"Log entry {index}",
        active="log",
        e=checked,
        b64=b64,
        origin=str(request.base_url).rstrip("/"),
    )


def _verify_form(request: Request, **context: Any) -> Response:
    coord = _coordinator(request)
    pages = _pages(request)
    defaults = Pins(
        log_key=coord.log.key().verifier_key,
        simulation_root=pages.simulation_root.hex() if pages.simulation_root else "",
    )
    values: dict[str, Any] = {
        "pins": defaults,
        "result": None,
        "error": None,
        "max_upload": MAX_UPLOAD,
        "banner": SIMULATED_BANNER,
    }
    values.update(context)
    status = 400 if values["error"] else 200
    return pages.renderer.page(
        "verify.html",
        status=status,
        fetch_https=True,
        title="Verify a proof bundle",
        active="verify",
        **values,
    )


router.add_api_route("/", _guarded(_home), methods=["GET"])
router.add_api_route("/datasets", _guarded(_datasets), methods=["GET"])
router.add_api_route("/datasets/{dataset}", _guarded(_dataset), methods=["GET"])
router.add_api_route("/log", _guarded(_log_page), methods=["GET"])
router.add_api_route("/log/entries/{index}", _guarded(_entry), methods=["GET"])
router.add_api_route("/verify", _guarded(_verify_form), methods=["GET"])


@router.post("/verify")
async def _verify(request: Request) -> Response:
    """Verify an uploaded (or pasted) bundle; the work runs off the event loop."""
    try:
        async with request.form(max_files=1, max_fields=8, max_part_size=MAX_UPLOAD) as form:
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            upload = form.get("bundle")
            raw = b""
            name = None
            if isinstance(upload, UploadFile) and upload.filename:
                raw = await upload.read(MAX_UPLOAD + 1)
                name = upload.filename
            if not raw:
                raw = fields.get("bundle_text", "").strip().encode("utf-8")
    except SealroomError as exc:
        return _error(request, exc)
    except Exception:  # python-multipart's parse errors: a malformed form, not a bug
        return _error(request, InvalidInput("the form could not be read"))
    if len(raw) > MAX_UPLOAD:
        return _error(request, BodyTooLarge(f"the bundle exceeds {MAX_UPLOAD} bytes"))
    pins = Pins.parse(fields)
    if not raw:
        return _verify_form(
            request, pins=pins, error="No bundle: choose or drop a file, or paste its JSON."
        )
    try:
        result = await run_in_threadpool(run_verifier, raw, pins, safe_filename(name))
    except InvalidInput as exc:
        return _verify_form(request, pins=pins, error=exc.detail or exc.public_message)
    return _verify_form(request, pins=pins, result=result)


@router.get("/static/{name}")
def _static(name: str) -> Response:
    return asset_response(name)


class _UploadLimit:
    """Refuse an oversized verifier upload by its Content-Length with an HTML page, before
    the API's body limit (which answers JSON) would; bodies without a length are still cut
    off by that limit while they are read."""

    def __init__(self, app: ASGIApp, renderer: Renderer) -> None:
        self.app = app
        self.renderer = renderer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/verify":
            for name, value in scope["headers"]:
                if name == b"content-length" and (not value.isdigit() or int(value) > MAX_UPLOAD):
                    response = self.renderer.page(
                        "error.html",
                        status=413,
                        title="Too large",
                        message="The bundle is too large for this page.",
                        detail=f"The form may be at most {MAX_UPLOAD} bytes; verify larger "
                        "bundles offline with `sealroom verify`.",
                        active="verify",
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def install_public_pages(app: FastAPI, *, simulation_root: bytes | None = None) -> None:
    """Serve the public pages on ``app`` (made by :func:`sealroom.api.app.create_app`).

    ``simulation_root``: the deployment's simulation root, pre-filled as the verifier's pin.
    """
    renderer = Renderer.create()
    app.state.public_pages = PublicPages(renderer, simulation_root)
    app.include_router(router)
    app.add_middleware(_UploadLimit, renderer=renderer)
