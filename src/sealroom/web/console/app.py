"""The party console: this party's inbox, requests, results and budgets, served on loopback.

Everything it does goes through the SDK's :class:`~sealroom.client.Party`, next to
the party's keystore: the browser never sees a key, and the coordinator sees only
what the CLI would send. Pages are server-rendered (Jinja2, autoescaped) and work
without script; ``console.js`` adds live progress (server-sent events) and charts.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sealroom.api.errors import status_for
from sealroom.client import Party, flows
from sealroom.client.flows import TERMINAL, FetchedResult
from sealroom.computations import Computation, Registry, default_registry
from sealroom.crypto.keys import fingerprint
from sealroom.errors import AuthenticationFailed, InvalidInput, NotFound, SealroomError
from sealroom.statements import Transfer
from sealroom.web.console.rooms import ROOM_NOTICES, RoomPages
from sealroom.web.console.security import (
    MAX_FORM_BYTES,
    ConsoleGuard,
    Session,
    Sessions,
    parse_form,
)
from sealroom.web.console.views import (
    FieldSpec,
    chart_specs,
    form_fields,
    params_from_form,
    result_tables,
)
from sealroom.wire import BudgetView, DatasetView, RequestView
from sealroom.wire.credits import CreditsView
from sealroom.wire.market import ReputationView

__all__ = ["ConsoleOptions", "create_console_app"]

T = TypeVar("T")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_HERE = Path(__file__).parent
RECENT_TRANSFERS = 20  # the Credits page lists this many, newest first
NOTICES = {
    "approved": "Approved: your data was checked, sealed to the enclave and uploaded.",
    "rejected": "Rejected: your signed rejection ends the request.",
    "auto": "Your policies decided what they could; the rest waits for you below.",
    "withdrawn": "Withdrawn.",
    **ROOM_NOTICES,
}


@dataclass(frozen=True, slots=True)
class ConsoleOptions:
    """What the console trusts when it seals and verifies (as the CLI's flags), and where it
    keeps the results it opens (written 0600 by the SDK)."""

    results_dir: Path
    allow_simulated: bool = False
    simulation_root: bytes | None = None
    measurements: bytes | None = None
    poll_interval: float = 0.5
    stream_seconds: float = 600.0
    registry: Registry = field(default_factory=default_registry)


def _request_id(value: str) -> str:
    if not _DIGEST.fullmatch(value):
        raise NotFound("no such request (a request id is sha256:<64 hex>)")
    return value


class Console:
    """The handlers, over one party; SDK calls run in worker threads, one write at a time."""

    def __init__(self, party: Party, options: ConsoleOptions, sessions: Sessions) -> None:
        self.party = party
        self.options = options
        self.sessions = sessions
        self.registry = options.registry
        self._write = threading.Lock()  # approvals, requests and results touch the keystore dir
        self._titles: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._results: dict[str, FetchedResult] = {}
        self.env = Environment(
            loader=PackageLoader("sealroom.web.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = lambda t: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))
        self.env.filters["short"] = lambda d: d if len(d) <= 19 else f"{d[:15]}…{d[-4:]}"
        self.env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True)

    # --- plumbing ------------------------------------------------------------------------

    def session(self, request: Request) -> Session:
        found = self.sessions.find(request.cookies.get(self.sessions.cookie))
        if found is None:  # the guard let no such request through; never assume it
            raise AuthenticationFailed("no console session")
        return found

    def page(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        notice = NOTICES.get(request.query_params.get("done", ""))
        html = self.env.get_template(template).render(
            party=self.party,
            fingerprint=fingerprint(self.party.party_id),
            simulated=self.options.allow_simulated,
            csrf=self.session(request).csrf,
            path=request.url.path,
            notice=notice,
            **context,
        )
        return HTMLResponse(html, status_code=status_code)

    def failure(self, request: Request, exc: SealroomError) -> HTMLResponse:
        return self.page(
            request,
            "error.html",
            # A refused CSRF token is a refusal (403), not a login the browser could retry.
            status_code=403 if isinstance(exc, AuthenticationFailed) else status_for(exc.code),
            code=exc.code,
            message=exc.public_message,
            detail=exc.detail,
        )

    async def call(self, fn: Callable[[], T], *, write: bool = False) -> T:
        def locked() -> T:
            if not write:
                return fn()
            with self._write:
                return fn()

        return await run_in_threadpool(locked)

    async def form(self, request: Request) -> Mapping[str, str]:
        body = bytearray()
        async for chunk in request.stream():  # bounded: stop reading past the limit
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                break
        form = parse_form(request.headers.get("content-type"), bytes(body))
        self.sessions.check_csrf(self.session(request), form.get("csrf"))
        return form

    def title(self, dataset: str) -> str:
        if dataset not in self._titles:
            try:
                self._titles[dataset] = self.party.show(dataset).title
            except SealroomError:
                return dataset
        return self._titles[dataset]

    def name(self, party_id: str) -> str:
        if party_id == self.party.party_id:
            return f"{self.party.name} (you)"
        if party_id not in self._names:
            try:
                shown = self.party.client.party(party_id).name
            except SealroomError:
                shown = None
            self._names[party_id] = f"{shown or 'unnamed'} · {fingerprint(party_id)}"
        return self._names[party_id]

    def computation(self, view: RequestView) -> Computation | None:
        try:
            return self.registry.resolve(view.computation)
        except SealroomError:
            return None

    def describe(self, view: RequestView) -> dict[str, Any]:
        """A request with the names a person reads: dataset titles, party names, summary."""
        comp = self.computation(view)
        return {
            "view": view,
            "summary": comp.summary if comp else "not in this console's computation library",
            "privacy_class": comp.privacy_class if comp else "unknown",
            "requester": self.name(view.requester),
            "inputs": [
                {
                    "input": i,
                    "title": self.title(i.dataset),
                    "owner": self.name(i.owner),
                    "mine": i.owner == self.party.party_id,
                }
                for i in view.inputs
            ],
            "precheck": {p.dataset: p for p in view.precheck},
        }

    # --- pages ---------------------------------------------------------------------------

    async def launch(self, request: Request) -> Response:
        try:
            session = self.sessions.launch(request.query_params.get("token", ""))
        except AuthenticationFailed:
            return PlainTextResponse(
                "refused: this launch link is not valid (use the one `sealroom ui` printed)\n",
                status_code=403,
            )
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            self.sessions.cookie, session.id, httponly=True, samesite="strict", path="/"
        )
        return response

    async def home(self, request: Request) -> Response:
        def load() -> tuple[list[tuple[DatasetView, BudgetView | None]], int, int]:
            mine = self.party.search(owner=self.party.party_id, limit=100).items
            datasets = []
            for hit in mine:
                try:
                    budget: BudgetView | None = self.party.budget(hit.dataset.dataset)
                except SealroomError:
                    budget = None
                datasets.append((hit.dataset, budget))
            return datasets, len(self.party.inbox()), len(self.party.requests())

        try:
            datasets, inbox, requests = await self.call(load)
        except SealroomError as exc:
            return self.failure(request, exc)
        return self.page(
            request,
            "home.html",
            datasets=[(d, b, _meter(b)) for d, b in datasets],
            inbox_count=inbox,
            request_count=requests,
        )

    async def credits(self, request: Request) -> Response:
        def load() -> tuple[CreditsView, ReputationView, list[dict[str, Any]]]:
            # Checked, not just shown: every transfer signed by the published ledger key, in
            # the log this party trusts, and summing to the balance (flows.verified_credits).
            party = self.party
            view = flows.verified_credits(party.client, party.identity, home=party.home)
            recent = []
            for t in reversed(view.transfers[-RECENT_TRANSFERS:]):
                transfer = t.envelope.open(Transfer).statement
                recent.append(
                    {
                        "transfer": transfer,
                        "amount": sum(
                            p.amount for p in transfer.postings if p.account == view.account
                        ),
                        "others": [
                            self.account_name(p.account)
                            for p in transfer.postings
                            if p.account != view.account
                        ],
                        "log_index": t.log_index,
                    }
                )
            return view, party.reputation(), recent

        try:
            view, reputation, recent = await self.call(load)
        except SealroomError as exc:
            return self.failure(request, exc)
        return self.page(
            request,
            "credits.html",
            credits=view,
            recent=recent,
            total=len(view.transfers),
            reputation=reputation,
        )

    def account_name(self, account: str) -> str:
        """A ledger account as a reader knows it: a party's name, else the account itself."""
        kind, _, rest = account.partition(":")
        if kind == "party" and rest:
            return self.name(rest)
        return account

    async def inbox(self, request: Request) -> Response:
        try:
            items = await self.call(lambda: [self.describe(v) for v in self.party.inbox()])
        except SealroomError as exc:
            return self.failure(request, exc)
        return self.page(request, "inbox.html", items=items)

    async def decide(self, request: Request) -> Response:
        try:
            form = await self.form(request)
            rid = _request_id(request.path_params["rid"])
            action = request.path_params["action"]
            reason = " ".join(form.get("reason", "").split())[:500]
            if action == "approve":
                await self.call(
                    lambda: self.party.approve(
                        rid,
                        reason=reason or "approved by the owner",
                        allow_simulated=self.options.allow_simulated,
                        measurements=self.options.measurements,
                        simulation_root=self.options.simulation_root,
                    ),
                    write=True,
                )
                return RedirectResponse("/inbox?done=approved", status_code=303)
            if action == "reject":
                if not reason:
                    raise InvalidInput("say why you reject it: the reason goes to the requester")
                await self.call(lambda: self.party.reject(rid, reason=reason), write=True)
                return RedirectResponse("/inbox?done=rejected", status_code=303)
            raise NotFound(f"no action {action!r}")
        except SealroomError as exc:
            return self.failure(request, exc)

    async def auto(self, request: Request) -> Response:
        try:
            await self.form(request)
            await self.call(
                lambda: self.party.auto_approve(
                    allow_simulated=self.options.allow_simulated,
                    measurements=self.options.measurements,
                    simulation_root=self.options.simulation_root,
                ),
                write=True,
            )
        except SealroomError as exc:
            return self.failure(request, exc)
        return RedirectResponse("/inbox?done=auto", status_code=303)

    async def computations(self, request: Request) -> Response:
        return self.page(request, "computations.html", computations=list(self.registry))

    def _builder(self, cid: str) -> tuple[Computation, tuple[FieldSpec, ...]]:
        try:
            comp = self.registry.get(cid)
        except SealroomError:
            raise NotFound(f"no computation {cid!r} in this console's library") from None
        return comp, form_fields(comp.params.model_json_schema())

    async def builder(self, request: Request) -> Response:
        try:
            comp, fields = self._builder(request.path_params["cid"])
            hits = await self.call(lambda: self.party.search(limit=100).items)
        except SealroomError as exc:
            return self.failure(request, exc)
        preset = {f"input.{i}": v for i, v in enumerate(request.query_params.getlist("dataset"))}
        return self.page(
            request, "builder.html", comp=comp, fields=fields, hits=hits, values=preset, error=None
        )

    async def submit(self, request: Request) -> Response:
        try:
            comp, fields = self._builder(request.path_params["cid"])
            form = await self.form(request)
        except SealroomError as exc:
            return self.failure(request, exc)
        try:
            slots = _slots(comp)
            datasets = [form.get(f"input.{i}", "").strip() for i in range(slots)]
            datasets = [d for d in datasets if d]
            for d in datasets:
                if not _DIGEST.fullmatch(d):
                    raise InvalidInput(f"{d[:80]!r} is not a dataset id (sha256:<64 hex>)")
            params = params_from_form(fields, form)
            ttl_days = form.get("ttl_days", "7").strip() or "7"
            if not ttl_days.isdigit() or not 1 <= int(ttl_days) <= 30:
                raise InvalidInput("the request's lifetime is 1 to 30 days")
            view = await self.call(
                lambda: self.party.request(comp.id, datasets, params, ttl=int(ttl_days) * 86_400),
                write=True,
            )
        except SealroomError as exc:
            try:
                hits = await self.call(lambda: self.party.search(limit=100).items)
            except SealroomError:
                hits = ()  # the form still shows the error and what was typed
            return self.page(
                request,
                "builder.html",
                status_code=status_for(exc.code),
                comp=comp,
                fields=fields,
                hits=hits,
                values=dict(form),
                error=exc,
            )
        return RedirectResponse(f"/requests/{view.request}", status_code=303)

    async def requests(self, request: Request) -> Response:
        try:
            items = await self.call(lambda: [self.describe(v) for v in self.party.requests()])
        except SealroomError as exc:
            return self.failure(request, exc)
        return self.page(request, "requests.html", items=items)

    def _result(self, rid: str) -> FetchedResult:
        if rid not in self._results:
            self._results[rid] = self.party.result(
                rid,
                self.options.results_dir / rid.removeprefix("sha256:"),
                allow_simulated=self.options.allow_simulated,
                measurements=self.options.measurements,
                simulation_root=self.options.simulation_root,
            )
        return self._results[rid]

    async def detail(self, request: Request) -> Response:
        try:
            rid = _request_id(request.path_params["rid"])
            view = await self.call(lambda: self.party.status(rid))
            described = await self.call(lambda: self.describe(view))
        except SealroomError as exc:
            return self.failure(request, exc)
        result, result_error = None, None
        if view.status == "completed" and self.party.party_id in view.recipients:
            try:
                result = await self.call(lambda: self._result(rid), write=True)
            except SealroomError as exc:
                result_error = exc
        titles = [i["title"] for i in described["inputs"]]
        charts = chart_specs(view.computation.id, result.body, titles) if result else ()
        return self.page(
            request,
            "request.html",
            item=described,
            terminal=view.status in TERMINAL,
            result=result,
            result_error=result_error,
            tables=result_tables(result.body) if result else (),
            charts=[c.to_json() for c in charts],
        )

    async def events(self, request: Request) -> Response:
        """Server-sent events: the request's status and history whenever they change."""
        try:
            rid = _request_id(request.path_params["rid"])
            first = await self.call(lambda: self.party.status(rid))
        except SealroomError as exc:
            return PlainTextResponse(exc.public_message, status_code=status_for(exc.code))

        async def stream() -> AsyncIterator[str]:
            view, last = first, ""
            deadline = time.monotonic() + self.options.stream_seconds
            yield "retry: 2000\n\n"
            while True:
                doc = json.dumps(
                    {
                        "status": view.status,
                        "reason": view.status_reason,
                        "terminal": view.status in TERMINAL,
                        "inputs": [
                            {"dataset": i.dataset, "decision": i.decision, "sealed": i.sealed}
                            for i in view.inputs
                        ],
                        "history": [h.model_dump(mode="json") for h in view.history],
                    },
                    sort_keys=True,
                )
                if doc != last:
                    yield f"event: status\ndata: {doc}\n\n"
                    last = doc
                if view.status in TERMINAL:
                    yield "event: end\ndata: {}\n\n"
                    return
                if time.monotonic() > deadline:
                    return  # the browser reconnects (after ``retry``) to a fresh stream
                if await request.is_disconnected():
                    return
                await asyncio.sleep(self.options.poll_interval)
                try:
                    view = await self.call(lambda: self.party.status(rid))
                except SealroomError as exc:
                    yield f"event: failure\ndata: {json.dumps({'error': exc.public_message})}\n\n"
                    return

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"}
        )

    async def bundle(self, request: Request) -> Response:
        try:
            rid = _request_id(request.path_params["rid"])
            result = await self.call(lambda: self._result(rid), write=True)
        except SealroomError as exc:
            return self.failure(request, exc)
        name = f"sealroom-bundle-{rid.removeprefix('sha256:')[:16]}.json"
        return FileResponse(result.bundle_path, media_type="application/json", filename=name)

    async def withdraw(self, request: Request) -> Response:
        try:
            await self.form(request)
            rid = _request_id(request.path_params["rid"])
            await self.call(lambda: self.party.withdraw(rid), write=True)
        except SealroomError as exc:
            return self.failure(request, exc)
        return RedirectResponse(f"/requests/{rid}?done=withdrawn", status_code=303)


def _slots(comp: Computation) -> int:
    return len(comp.input_names) + (2 if comp.variadic else 0)


def _meter(budget: BudgetView | None) -> dict[str, Any] | None:
    """The epsilon meter of a dataset's budget: spent of total (None without a DP budget)."""
    if budget is None or budget.epsilon_total is None:
        return None
    total = float(budget.epsilon_total)
    spent = float(budget.epsilon_spent)
    return {
        "total": total,
        "spent": min(spent, total),
        "low": total * 0.5,
        "high": total * 0.8,
        "percent": 0 if total <= 0 else round(100 * spent / total),
    }


async def _not_found(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("not found\n", status_code=404)


def create_console_app(party: Party, *, options: ConsoleOptions, sessions: Sessions) -> Starlette:
    """The console's ASGI app for ``party``: open it at ``/launch?token=<sessions.launch_token>``."""
    console = Console(party, options, sessions)
    routes = [
        Route("/launch", console.launch, methods=["GET"]),
        Route("/", console.home, methods=["GET"]),
        Route("/inbox", console.inbox, methods=["GET"]),
        Route("/credits", console.credits, methods=["GET"]),
        Route("/inbox/auto", console.auto, methods=["POST"]),
        Route("/inbox/{rid}/{action}", console.decide, methods=["POST"]),
        Route("/new", console.computations, methods=["GET"]),
        Route("/new/{cid}", console.builder, methods=["GET"]),
        Route("/new/{cid}", console.submit, methods=["POST"]),
        Route("/requests", console.requests, methods=["GET"]),
        Route("/requests/{rid}", console.detail, methods=["GET"]),
        Route("/requests/{rid}/events", console.events, methods=["GET"]),
        Route("/requests/{rid}/bundle.json", console.bundle, methods=["GET"]),
        Route("/requests/{rid}/withdraw", console.withdraw, methods=["POST"]),
        *RoomPages(console).routes(),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(ConsoleGuard, sessions=sessions)],
        exception_handlers={404: _not_found},
    )
