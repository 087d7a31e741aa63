"""``sealroom room``: rooms from templates, invitations, pre-checked joins, consents, runs and
their approvals; ``sealroom org``: an organisation's people and their roles."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from sealroom.cli.common import (
    DEFAULT_URL_VALUE,
    HomeOpt,
    JsonOpt,
    UrlOpt,
    command,
    emit,
    report,
    table,
    warn_simulated,
)
from sealroom.cli.exits import exit_code_for, exit_code_for_status
from sealroom.errors import InvalidInput

if TYPE_CHECKING:
    from sealroom.wire import RoomView

# The SDK and the statement models load inside the commands (fast `--help`).

__all__ = ["register"]

room_app = typer.Typer(
    no_args_is_help=True,
    help="Rooms: a host's template, invited parties, pre-checked joins, consents and runs.",
)
org_app = typer.Typer(
    no_args_is_help=True, help="An organisation's people (each with its own key) and roles."
)

RoomArg = Annotated[str, typer.Argument(metavar="ROOM", help="Room id (sha256:...).")]
RequestArg = Annotated[str, typer.Argument(metavar="REQUEST", help="Run (request) id.")]
AllowSimulated = Annotated[
    bool,
    typer.Option(
        "--allow-simulated",
        help="Accept a SIMULATED enclave (software only, protects nothing). Tests only.",
    ),
]


def _room_json(view: RoomView) -> dict[str, Any]:
    return {
        "room": view.room,
        "name": view.name,
        "host": view.host,
        "template": view.template,
        "risky": view.risky,
        "region": view.region,
        "expires_at": view.expires_at,
        "expired": view.expired,
        "snapshot_digest": view.snapshot_digest,
        "snapshot": view.snapshot,
        "members": [m.to_json_dict() for m in view.members],
        "runs": [r.to_json_dict() for r in view.runs],
        "red_flags": [e.to_json_dict() for e in view.red_flags],
    }


def _when(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _print_room(view: RoomView, *, events: bool = False) -> None:
    snap = view.snapshot
    typer.echo(f"room {view.room}")
    typer.echo(f"  {view.name}: {snap['purpose']}")
    risky = " (RISKY: " + "; ".join(snap["template"]["risk_reasons"]) + ")" if view.risky else ""
    typer.echo(f"  template {view.template}{risky}")
    queries = ", ".join(f"{q['id']} {q['version']}" for q in snap["allowed_queries"])
    typer.echo(f"  allowed queries: {queries}")
    dp = snap["dp"]
    typer.echo(
        f"  k {snap['k']}, DP {dp['mode']}"
        + (
            f" (epsilon {dp['epsilon_per_run']} per run, {dp['epsilon_total']} total)"
            if dp["mode"] == "required"
            else ""
        )
    )
    typer.echo(
        f"  region {view.region or 'any'}, expires {_when(view.expires_at)}"
        + (" (EXPIRED)" if view.expired else "")
        + f", retention {snap['retention_seconds']} s, approvers per party "
        f"{snap['approvers_required']}"
    )
    typer.echo(f"  policy snapshot {view.snapshot_digest}")
    _print_members(view)
    if view.runs:
        typer.echo("runs:")
        for r in view.runs:
            typer.echo(f"  {r.request}  {r.computation}  {r.status}  approvals {len(r.approvals)}")
    for flag in view.red_flags:
        typer.secho(f"red flag: {flag.detail}", fg="yellow")
    if events:
        typer.echo("events:")
        for e in view.events:
            typer.echo(f"  {_when(e.at)}  {e.kind}  {e.detail}")


def _print_members(view: RoomView) -> None:
    table(
        [
            [
                m.party,
                m.role,
                m.status,
                m.consent_state,
                str(m.precheck.get("entities", "")) if m.precheck else "",
            ]
            for m in view.members
        ],
        ["party", "role", "status", "consent", "entities"],
    )


@room_app.command("create")
def create(
    template: Annotated[
        str,
        typer.Option(
            "--template",
            help="psi-overlap, intersection-sum, research-stats, binary-lift or glm-training.",
        ),
    ],
    name: Annotated[str, typer.Option("--name")],
    purpose: Annotated[str, typer.Option("--purpose", help="What the room is for (shown).")],
    k: Annotated[int, typer.Option("--k", help="Minimum distinct entities per release.")],
    expires_in: Annotated[
        int, typer.Option("--expires-in", min=60, help="Seconds until the room closes.")
    ] = 30 * 86400,
    dp: Annotated[
        str, typer.Option("--dp", help="required (DP releases) or exact (risky).")
    ] = "required",
    epsilon_per_run: Annotated[str, typer.Option("--epsilon-per-run")] = "1",
    epsilon_total: Annotated[str, typer.Option("--epsilon-total")] = "4",
    retention: Annotated[
        int, typer.Option("--retention", min=1, help="Seconds results may be kept.")
    ] = 30 * 86400,
    region: Annotated[
        str | None, typer.Option("--region", help="Only enclaves declaring this region.")
    ] = None,
    max_parties: Annotated[int, typer.Option("--max-parties")] = 5,
    approval: Annotated[
        str, typer.Option("--approval", help="policy (members' clients approve) or manual.")
    ] = "policy",
    protocols: Annotated[
        bool,
        typer.Option(
            "--protocols",
            help="Runs may also execute as the template's no-trust protocols, between the "
            "parties without an enclave (exact releases: needs --dp exact).",
        ),
    ] = False,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a room from a template; you are its host and sign its policy snapshot."""
    with command(json_output, url=url, home=home) as cmd:
        if dp not in ("required", "exact"):
            raise InvalidInput("--dp must be required or exact")
        if approval not in ("policy", "manual"):
            raise InvalidInput("--approval must be policy or manual")
        party = cmd.party()
        room = party.rooms.create(
            name=name,
            purpose=purpose,
            template=template,
            k=k,
            expires_at=party.now() + expires_in,
            dp=dp,  # type: ignore[arg-type]
            epsilon_per_run=epsilon_per_run if dp == "required" else None,
            epsilon_total=epsilon_total if dp == "required" else None,
            retention_seconds=retention,
            region=region,
            max_parties=max_parties,
            approval=approval,  # type: ignore[arg-type]
            protocols=protocols,
        )
        emit(json_output, _room_json(room.view), lambda: _print_room(room.view))


@room_app.command("list")
def list_rooms(
    url: UrlOpt = DEFAULT_URL_VALUE, home: HomeOpt = None, json_output: JsonOpt = False
) -> None:
    """The rooms you host or are invited to."""
    with command(json_output, url=url, home=home) as cmd:
        views = cmd.party().rooms.list()
        emit(
            json_output,
            {"rooms": [_room_json(v) for v in views]},
            lambda: table(
                [[v.room, v.name, v.template, "expired" if v.expired else "open"] for v in views],
                ["room", "name", "template", "state"],
            ),
        )


@room_app.command("show")
def show(
    room: RoomArg,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """A room (checked against its signed statements): policy, members, runs, red flags."""
    with command(json_output, url=url, home=home) as cmd:
        view = cmd.party().rooms.show(room).view
        emit(json_output, _room_json(view), lambda: _print_room(view, events=True))


@room_app.command("members")
def members(
    room: RoomArg,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """A room's members: invitation, join (with the pre-check) and consent state."""
    with command(json_output, url=url, home=home) as cmd:
        view = cmd.party().rooms.show(room).view
        emit(
            json_output,
            {"members": [m.to_json_dict() for m in view.members]},
            lambda: _print_members(view),
        )


@room_app.command("invite")
def invite(
    room: RoomArg,
    party_id: Annotated[str, typer.Argument(metavar="PARTY", help="The invitee's party id.")],
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Invite a party (host only)."""
    with command(json_output, url=url, home=home) as cmd:
        view = cmd.party().rooms.invite(room, party_id)
        report(json_output, _room_json(view), f"invited {party_id} to {room}")


@room_app.command("join")
def join(
    room: RoomArg,
    dataset: Annotated[str, typer.Option("--dataset", help="Your published dataset to bring.")],
    key_column: Annotated[
        str, typer.Option("--key-column", help="Identifier (entity) column.")
    ] = "id",
    numeric: Annotated[
        list[str] | None,
        typer.Option("--numeric", help="A column that must be numeric (repeatable)."),
    ] = None,
    check_only: Annotated[
        bool, typer.Option("--check-only", help="Run the local pre-check, print it, send nothing.")
    ] = False,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Pre-check your data locally (schema, column types, entities for k, the card it would
    reveal), then join with the report."""
    with command(json_output, url=url, home=home) as cmd:
        party = cmd.party()
        columns: dict[str, Literal["any", "numeric"]] = {c: "numeric" for c in numeric or ()}
        report = party.rooms.precheck(room, dataset, key_column=key_column, columns=columns)

        def say() -> None:
            typer.echo(
                f"pre-check of {dataset}: {report['entities']} entities (k {report['k']}), "
                f"{report['rows']} rows, card reveals {report['card']['keywords']} keywords"
            )
            for p in report["problems"]:
                typer.echo(f"  problem: {p}")

        if check_only or not report["ok"]:
            emit(json_output, {"precheck": report}, say)
            if not report["ok"]:
                raise typer.Exit(exit_code_for(InvalidInput()))
            return
        view = party.rooms.join(room, dataset, key_column=key_column, columns=columns).view
        emit(json_output, {"precheck": report, "room": _room_json(view)}, say)


@room_app.command("consent")
def consent(
    room: RoomArg,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Consent to the room's policy snapshot (the digest is recomputed here and signed)."""
    with command(json_output, url=url, home=home) as cmd:
        view = cmd.party().rooms.consent(room).view
        report(json_output, _room_json(view), f"consented to snapshot {view.snapshot_digest}")


@room_app.command("withdraw-consent")
def withdraw_consent(
    room: RoomArg,
    reason: Annotated[str, typer.Option("--reason")] = "",
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Withdraw your consent: the room's runs that have not started stop at once."""
    with command(json_output, url=url, home=home) as cmd:
        view = cmd.party().rooms.withdraw_consent(room, reason=reason).view
        report(json_output, _room_json(view), f"withdrew consent from {room}")


@room_app.command("run")
def run(
    room: RoomArg,
    dataset: Annotated[list[str], typer.Option("--dataset", help="An input (repeat, in order).")],
    computation: Annotated[
        str | None,
        typer.Option("--computation", help="One of the room's queries, run in an enclave."),
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(
            "--protocol",
            help="psi, pjc, he or secagg: run between the parties, no enclave (if the room allows).",
        ),
    ] = None,
    params: Annotated[str, typer.Option("--params", help="Parameters as a JSON object.")] = "{}",
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Start a run (host only): a request under the room's policy."""
    with command(json_output, url=url, home=home) as cmd:
        if (computation is None) == (protocol is None):
            raise InvalidInput("name what runs: --computation NAME or --protocol NAME")
        try:
            parsed = json.loads(params)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"--params is not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise InvalidInput("--params must be a JSON object")
        if protocol is not None:
            view = cmd.party().rooms.request_protocol(room, protocol, dataset, parsed)
        else:
            assert computation is not None
            view = cmd.party().rooms.run(room, computation, dataset, parsed)
        report(
            json_output,
            {"request": view.request, "status": view.status, "reason": view.status_reason},
            f"run {view.request} is {view.status}",
        )


@room_app.command("approve")
def approve(
    room: RoomArg,
    request: RequestArg,
    org: Annotated[
        str | None,
        typer.Option(
            "--org",
            help="Approve as a person of this organisation (risky rooms need two). Without "
            "it: approve as the data owner (verify the enclave, seal and upload your data).",
        ),
    ] = None,
    reject: Annotated[bool, typer.Option("--reject", help="With --org: reject instead.")] = False,
    reason: Annotated[str, typer.Option("--reason")] = "",
    allow_simulated: AllowSimulated = False,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Approve one run of a room."""
    with command(json_output, url=url, home=home, allow_simulated=allow_simulated) as cmd:
        party = cmd.party()
        if org is not None:
            view = party.rooms.approve_run(
                room, request, org=org, decision="reject" if reject else "approve", reason=reason
            )
            report(json_output, _room_json(view), f"recorded for {request}")
            return
        if reject:
            raise InvalidInput("--reject applies with --org; as the owner use `sealroom reject`")
        from sealroom.protocols.queries import is_protocol
        from sealroom.statements import ComputationRequest

        policy = party.rooms.show(room).room.statement.snapshot.policy
        req = ComputationRequest.parse_payload(party.status(request).envelope.payload)
        if req.room_policy != policy:
            from sealroom.errors import NotFound

            raise NotFound(f"no run {request} in room {room}")
        if is_protocol(req.computation.id):
            approved = party.rooms.approve_protocol(request)
            report(
                json_output,
                {"request": approved.request, "status": approved.status},
                f"approved your inputs; run is {approved.status}",
            )
            return
        done = party.approve(
            request, reason=reason or "approved in the room", allow_simulated=allow_simulated
        )

        def say() -> None:
            for a in done:
                typer.echo(f"approved {a.dataset}; run is {a.status}")

        emit(
            json_output,
            {"approved": [{"dataset": a.dataset, "status": a.status} for a in done]},
            say,
        )
        if any(a.simulated for a in done) and not json_output:
            warn_simulated(err=False)


@room_app.command("run-protocol")
def run_protocol(
    room: RoomArg,
    request: RequestArg,
    key_column: Annotated[
        str | None, typer.Option("--key-column", help="psi, pjc: the identifier column.")
    ] = None,
    value_column: Annotated[
        str | None,
        typer.Option("--value-column", help="pjc, the party whose values are summed: integers."),
    ] = None,
    features: Annotated[
        str, typer.Option("--features", help="training: comma-separated feature columns.")
    ] = "",
    label: Annotated[
        str | None, typer.Option("--label", help="training, owners: the 0/1 label.")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait for the other parties.")
    ] = 120.0,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Take part in an approved protocol run with your attested data (the host starts it,
    the others join); everything is checked first, and the receipts go into the log."""
    with command(json_output, url=url, home=home) as cmd:
        party = cmd.party()
        if request not in {r.request for r in party.rooms.show(room).view.runs}:
            from sealroom.errors import NotFound

            raise NotFound(f"no run {request} in room {room}")
        done = party.rooms.run_protocol(
            request,
            key_column=key_column,
            value_column=value_column,
            features=[f.strip() for f in features.split(",") if f.strip()],
            label=label,
            timeout=timeout,
        )

        def say() -> None:
            typer.echo(f"ran {done.session.protocol} as {done.session.me}; you learned:")
            for key, value in done.learned.items():
                typer.echo(f"  {key}: {value}")

        emit(json_output, done.to_dict(), say)


@room_app.command("status")
def status(
    room: RoomArg,
    request: RequestArg,
    wait: Annotated[
        float | None, typer.Option("--wait", help="Wait up to this many seconds for the end.")
    ] = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """A run's progress (visible to every member); exits non-zero unless it completed."""
    with command(json_output, url=url, home=home) as cmd:
        party = cmd.party()
        view = party.rooms.show(room).view
        if request not in {r.request for r in view.runs}:
            from sealroom.errors import NotFound

            raise NotFound(f"no run {request} in room {room}")
        if wait is not None:
            party.wait(request, timeout=wait)
            view = party.rooms.show(room).view
        run_view = next(r for r in view.runs if r.request == request)
        report(
            json_output,
            run_view.to_json_dict(),
            f"{run_view.request} {run_view.status}: {run_view.status_reason or ''}",
        )
    raise typer.Exit(exit_code_for_status(run_view.status))


@room_app.command("summary")
def summary(
    room: RoomArg,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the page as HTML here.")
    ] = None,
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Write the page as PDF here.")] = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """The room's one-page policy summary (HTML and PDF from the same data), drawn from its
    signed snapshot: read it before `room consent`, which signs the digest it shows."""
    with command(json_output, url=url, home=home) as cmd:
        from sealroom.cli.audit import emit_summary

        emit_summary(cmd.party().rooms.summary(room), html=html, pdf=pdf, json_output=json_output)


@room_app.command("pack")
def pack(
    room: RoomArg,
    out: Annotated[Path, typer.Argument(help="The pack directory to create (must not exist).")],
    valid_for: Annotated[
        int,
        typer.Option("--valid-for", min=60, help="Seconds the pack holds (its not-after time)."),
    ] = 30 * 86400,
    audience: Annotated[
        str | None, typer.Option("--audience", help="The auditor's party id it is issued to.")
    ] = None,
    purpose: Annotated[str, typer.Option("--purpose")] = "room audit disclosure",
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Issue a signed, time-bound auditor pack of the room: its policy snapshot, every
    completed run's proof bundle and deletions, and its consents, withdrawals and approvals
    with log proofs. Check it offline with `sealroom verify-pack`."""
    with command(json_output, url=url, home=home) as cmd:
        manifest = cmd.party().rooms.pack(
            room, out, valid_for=valid_for, audience=audience, purpose=purpose
        )
        runs = sum(1 for f in manifest.files if f.role == "bundle")
        doc = {
            "pack": str(out),
            "room": room,
            "issuer": manifest.issuer,
            "snapshot": manifest.snapshot,
            "not_after": manifest.not_after,
            "files": [f.path for f in manifest.files],
        }
        report(
            json_output,
            doc,
            f"wrote {out}: room {room}, {runs} run(s), {len(manifest.files)} files, signed "
            f"by {manifest.issuer}, valid until {_when(manifest.not_after)}",
        )


@org_app.command("add-member")
def add_member(
    member: Annotated[str, typer.Argument(metavar="PARTY", help="The person's party id.")],
    role: Annotated[str, typer.Option("--role", help="admin, approver, analyst or auditor.")],
    remove: Annotated[bool, typer.Option("--remove", help="Remove the member.")] = False,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """As an organisation (your keystore): name a person and its role, or remove it."""
    with command(json_output, url=url, home=home) as cmd:
        if role not in ("admin", "approver", "analyst", "auditor"):
            raise InvalidInput("--role must be admin, approver, analyst or auditor")
        view = cmd.party().rooms.add_member(member, role, active=not remove)  # type: ignore[arg-type]
        report(
            json_output, view.to_json_dict(), f"{member}: {role}{' (removed)' if remove else ''}"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(room_app, name="room")
    app.add_typer(org_app, name="org")
