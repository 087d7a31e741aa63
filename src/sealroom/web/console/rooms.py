"""The console's rooms: list, the one-page summary, and the host's and members' verbs.

Every room is re-opened from its signed envelope by the SDK (``party.rooms``), so the
page shows what was checked here, not the coordinator's word; the summary is rendered
from the checked :class:`~sealroom.audit.summary.PolicySummary` by this console's own
template (no HTML from elsewhere is embedded). The consent button names the snapshot
digest the summary shows: what a member clicks is what the SDK signs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from sealroom.client.flows import TERMINAL
from sealroom.errors import InvalidInput, NotFound, SealroomError
from sealroom.protocols.queries import is_protocol

if TYPE_CHECKING:
    from sealroom.client import Party
    from sealroom.wire import RequestView

__all__ = ["ROOM_NOTICES", "RoomPages"]

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_PARTY = re.compile(r"^[A-Za-z0-9:_+/=.-]{8,200}$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DECIMAL = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,6})?$")
PACK_DAYS = 30  # an auditor pack from the console holds this long
ROOM_NOTICES = {
    "room-created": "Room created: its policy and snapshot are signed; invite the members below.",
    "room-invited": "Invited: the party sees the room in its console and can pre-check and join.",
    "room-joined": "Joined with the pre-check report shown; read the summary, then consent.",
    "room-consented": "Consent signed over the snapshot digest shown on this page.",
    "room-withdrawn": "Consent withdrawn: open runs of this room stop; this console seals nothing more for it.",
    "room-run": "Run started: each member approves its input (or its policy does).",
    "room-approved": "Approved: your input was checked, sealed to the enclave and uploaded.",
    "room-org-approved": "Your approval as a person of the organisation is recorded.",
    "room-protocol-approved": "Approved: your inputs of this protocol run (nothing is sealed). "
    "Take part with `sealroom room run-protocol ROOM RUN` once every party has approved.",
}


T = TypeVar("T")


class Console(Protocol):
    """What the rooms pages use of the console (its app module, which mounts them)."""

    @property
    def party(self) -> Party: ...
    @property
    def options(self) -> Any: ...

    def name(self, party_id: str) -> str: ...
    def page(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse: ...
    def failure(self, request: Request, exc: SealroomError) -> HTMLResponse: ...
    async def call(self, fn: Callable[[], T], *, write: bool = False) -> T: ...
    async def form(self, request: Request) -> Mapping[str, str]: ...


def _digest(value: str, what: str) -> str:
    if not _DIGEST.fullmatch(value):
        raise NotFound(f"no such {what} (an id is sha256:<64 hex>)")
    return value


def _text(form: Mapping[str, str], name: str, limit: int, *, required: bool = True) -> str:
    value = " ".join(form.get(name, "").split())
    if required and not value:
        raise InvalidInput(f"{name} is required")
    if len(value) > limit:
        raise InvalidInput(f"{name} is at most {limit} characters")
    return value


def _int(form: Mapping[str, str], name: str, low: int, high: int) -> int:
    raw = form.get(name, "").strip()
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(f"{name} is a whole number from {low} to {high}")
    return int(raw)


def _party(value: str) -> str:
    value = value.strip()
    if not _PARTY.fullmatch(value):
        raise InvalidInput(f"{value[:80]!r} is not a party id")
    return value


class RoomPages:
    """The rooms pages over one console (its party, session, CSRF check and write lock)."""

    def __init__(self, console: Console) -> None:
        self.c = console

    def routes(self) -> list[Route]:
        return [
            Route("/rooms", self.index, methods=["GET"]),
            Route("/rooms", self.create, methods=["POST"]),
            Route("/rooms/{room}", self.detail, methods=["GET"]),
            Route("/rooms/{room}/join", self.join_form, methods=["GET"]),
            Route("/rooms/{room}/{action}", self.act, methods=["POST"]),
            Route("/rooms/{room}/runs/{rid}/{action}", self.run_act, methods=["POST"]),
        ]

    def _redirect(self, room: str, done: str) -> Response:
        return RedirectResponse(f"/rooms/{room}?done=room-{done}", status_code=303)

    # --- pages -----------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        from sealroom.computations.templates import TEMPLATES

        c = self.c
        me = c.party.party_id

        def load() -> list[dict[str, Any]]:
            items = []
            for view in c.party.rooms.list():
                mine = next((m for m in view.members if m.party == me), None)
                items.append(
                    {
                        "view": view,
                        "role": "host" if view.host == me else "member",
                        "me": mine,
                        "host": c.name(view.host),
                    }
                )
            return items

        try:
            items = await c.call(load)
        except SealroomError as exc:
            return c.failure(request, exc)
        return c.page(request, "rooms.html", items=items, templates=TEMPLATES, error=None)

    async def detail(self, request: Request) -> Response:
        from sealroom.audit.render import sections

        c = self.c
        try:
            room = _digest(request.path_params["room"], "room")
            verified = await c.call(lambda: c.party.rooms.show(room))
            summary = await c.call(lambda: c.party.rooms.summary(room))
            members = [{"m": m, "name": c.name(m.party)} for m in verified.view.members]

            def status(rid: str) -> RequestView | None:
                try:
                    return c.party.status(rid)
                except SealroomError:  # a run this party may not read: no button, still listed
                    return None

            runs = []
            for r in verified.view.runs:
                seen = await c.call(partial(status, r.request))
                pending_mine = seen is not None and any(
                    i.owner == c.party.party_id and i.decision == "pending" for i in seen.inputs
                )
                runs.append({"run": r, "pending_mine": pending_mine})
        except SealroomError as exc:
            return c.failure(request, exc)
        me = c.party.party_id
        mine = next((m for m in verified.view.members if m.party == me), None)
        snapshot = verified.room.statement.snapshot
        return c.page(
            request,
            "room.html",
            room=verified,
            view=verified.view,
            summary=summary,
            sections=sections(summary),
            members=members,
            runs=runs,
            me=mine,
            is_host=verified.view.host == me,
            queries=[q.id for q in snapshot.allowed_queries],
            results_dir=c.options.results_dir,
            terminal=TERMINAL,
            pack=request.query_params.get("pack"),
        )

    async def join_form(self, request: Request) -> Response:
        """The local pre-check report, shown before anything is sent."""
        c = self.c
        try:
            room = _digest(request.path_params["room"], "room")
            dataset = request.query_params.get("dataset", "").strip()
            key_column = request.query_params.get("key_column", "id").strip() or "id"
            verified = await c.call(lambda: c.party.rooms.show(room))
            mine = await c.call(lambda: c.party.search(owner=c.party.party_id, limit=100).items)
            report = None
            if dataset:
                _digest(dataset, "dataset")
                report = await c.call(
                    lambda: c.party.rooms.precheck(room, dataset, key_column=key_column)
                )
        except SealroomError as exc:
            return c.failure(request, exc)
        return c.page(
            request,
            "room_join.html",
            view=verified.view,
            mine=mine,
            dataset=dataset,
            key_column=key_column,
            report=report,
        )

    # --- verbs -----------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        c = self.c
        try:
            form = await c.form(request)
            template = _text(form, "template", 64)
            dp: Literal["required", "exact"] = (
                "exact" if form.get("dp", "required") == "exact" else "required"
            )
            eps_run = form.get("epsilon_per_run", "1").strip() or "1"
            eps_total = form.get("epsilon_total", "4").strip() or "4"
            for name, value in (("epsilon_per_run", eps_run), ("epsilon_total", eps_total)):
                if not _DECIMAL.fullmatch(value):
                    raise InvalidInput(f"{name} is a positive decimal such as 1 or 0.5")
            region = form.get("region", "").strip() or None
            if region is not None and not _REGION.fullmatch(region):
                raise InvalidInput("region is a name such as eu-west (lowercase, digits, -)")
            days = _int(form, "expires_days", 1, 365)
            invitees = [_party(p) for p in form.get("invitees", "").split() if p.strip()]
            settings = {
                "name": _text(form, "name", 120),
                "purpose": _text(form, "purpose", 500),
                "template": template,
                "k": _int(form, "k", 2, 1_000_000),
                "dp": dp,
                "epsilon_per_run": eps_run if dp == "required" else None,
                "epsilon_total": eps_total if dp == "required" else None,
                "expires_at": int(time.time()) + days * 86_400,
                "region": region,
            }

            def make() -> str:
                for invitee in invitees:  # each a registered party, before anything is signed
                    c.party.client.party(invitee)
                room = c.party.rooms.create(**settings)  # type: ignore[arg-type]
                for invitee in invitees:
                    c.party.rooms.invite(room.digest, invitee)
                return room.digest

            room = await c.call(make, write=True)
        except SealroomError as exc:
            return c.failure(request, exc)
        return self._redirect(room, "created")

    async def act(self, request: Request) -> Response:
        c = self.c
        try:
            form = await c.form(request)
            room = _digest(request.path_params["room"], "room")
            action = request.path_params["action"]
            rooms = c.party.rooms
            if action == "invite":
                invitee = _party(form.get("party", ""))
                await c.call(lambda: rooms.invite(room, invitee), write=True)
                return self._redirect(room, "invited")
            if action == "join":
                dataset = _digest(form.get("dataset", "").strip(), "dataset")
                key_column = _text(form, "key_column", 128)
                await c.call(lambda: rooms.join(room, dataset, key_column=key_column), write=True)
                return self._redirect(room, "joined")
            if action in ("consent", "withdraw"):
                # The button names a snapshot digest: refuse if the room now has another.
                shown = form.get("snapshot", "")
                verified = await c.call(lambda: rooms.show(room))
                if shown != verified.room.statement.snapshot_digest:
                    raise InvalidInput(
                        "the snapshot on the page is not the room's snapshot: reload and read it"
                    )
                if action == "consent":
                    await c.call(lambda: rooms.consent(room), write=True)
                    return self._redirect(room, "consented")
                reason = _text(form, "reason", 500, required=False)
                await c.call(lambda: rooms.withdraw_consent(room, reason=reason), write=True)
                return self._redirect(room, "withdrawn")
            if action == "run":
                computation = _text(form, "computation", 64)
                datasets = [_digest(d, "dataset") for d in form.get("datasets", "").split()]
                eps = form.get("epsilon", "").strip()
                params: dict[str, Any] = {}
                if eps:
                    if not _DECIMAL.fullmatch(eps):
                        raise InvalidInput("epsilon is a positive decimal such as 1")
                    params["dp"] = {"epsilon": eps}
                view = await c.call(
                    lambda: rooms.run(room, computation, datasets, params), write=True
                )
                return RedirectResponse(
                    f"/rooms/{room}?done=room-run&run={view.request}", status_code=303
                )
            if action == "pack":
                out = (
                    c.options.results_dir
                    / "packs"
                    / (f"room-{room.removeprefix('sha256:')[:16]}-{int(time.time())}")
                )
                await c.call(
                    lambda: rooms.pack(room, out, valid_for=PACK_DAYS * 86_400), write=True
                )
                return RedirectResponse(f"/rooms/{room}?pack={out.name}", status_code=303)
            raise NotFound(f"no room action {action!r}")
        except SealroomError as exc:
            return c.failure(request, exc)

    async def run_act(self, request: Request) -> Response:
        c = self.c
        try:
            form = await c.form(request)
            room = _digest(request.path_params["room"], "room")
            rid = _digest(request.path_params["rid"], "run")
            action = request.path_params["action"]
            verified = await c.call(lambda: c.party.rooms.show(room))
            if rid not in {r.request for r in verified.view.runs}:
                raise NotFound("no such run in this room")
            run = next(r for r in verified.view.runs if r.request == rid)
            if action == "approve" and is_protocol(run.computation):
                # A protocol run: approved by hand (this click), no sealing; the parties run it.
                await c.call(lambda: c.party.rooms.approve_protocol(rid), write=True)
                return self._redirect(room, "protocol-approved")
            if action == "approve":  # this party, owner of an input, approves and seals it
                opts = c.options
                await c.call(
                    lambda: c.party.approve(
                        rid,
                        reason="approved in the room",
                        allow_simulated=opts.allow_simulated,
                        measurements=opts.measurements,
                        simulation_root=opts.simulation_root,
                    ),
                    write=True,
                )
                return self._redirect(room, "approved")
            if action == "org-approve":  # a person of an organisation (dual approval)
                org = _party(form.get("org", ""))
                await c.call(lambda: c.party.rooms.approve_run(room, rid, org=org), write=True)
                return self._redirect(room, "org-approved")
            raise NotFound(f"no run action {action!r}")
        except SealroomError as exc:
            return c.failure(request, exc)
