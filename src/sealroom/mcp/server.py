"""The MCP server: one party's flows as tools, for an agent acting for that party.

Who may do what. The agent acts for one party (the keystore the person who
started the server chose) and can do what that party's *policies* already
decide, never more:

- read: ``whoami``, ``computations``, ``search``, ``show_card``, ``preview_card``,
  ``inbox``, ``status``, ``wait``, and resources for cards and receipts;
- ask: ``request`` (owners decide; the agent only spends this party's name),
  ``withdraw`` (its own requests), ``reject`` (refusing is always safe for an owner);
- approve: ``approve_within_policy`` approves exactly what this party's dataset
  policies approve automatically (the same decision the enclave re-checks). There is
  no tool that approves anything a policy leaves to a person: the answer names the
  command the person runs;
- publish: a card is signed in this party's name and stays in the public log forever,
  which no policy covers, so ``publish`` is refused unless the person started the
  server with ``--allow-publish``;
- results: ``result`` opens and verifies this party's result offline, ``verify``
  checks any proof bundle; both raise (a tool error) when a check fails;
- protocols: ``psi`` and ``pjc`` run a private set intersection / intersection-sum with
  one named peer on a local file's column. They disclose to that peer (set sizes, a
  count or a sum) outside any dataset policy, so both are refused unless the person
  started the server with ``--allow-protocols``; the peer is always named (a run started
  by anyone else is refused before any data is read), and the co-signed run record with
  everything this party learned is kept (0600) in the results folder;
- owners: ``budget`` shows a dataset's DP budget, spent and left;
- rooms: ``rooms`` and ``room`` read this party's rooms, each checked against its signed
  statements (snapshot, members, runs, red flags). Joining, consenting and approving a room's
  runs are a person's signed decisions: no tool does them, ``room`` names the commands.

The limits are the server's start-up options (:class:`AgentLimits`); nothing inside a
session widens them. Simulated enclaves are refused unless the person allowed them,
and every answer that a simulated enclave touched carries ``simulated: true`` and the
banner. Errors reach the agent as their public message and detail, never a traceback.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from sealroom import __version__
from sealroom.attestation.simulated import SIMULATED_BANNER
from sealroom.client import Party, ProtocolRun
from sealroom.client.flows import CardOptions, preview_card
from sealroom.client.rooms import VerifiedRoom
from sealroom.crypto.files import write_private
from sealroom.crypto.keys import fingerprint
from sealroom.errors import InvalidInput, NotFound, PolicyDenied, SealroomError
from sealroom.statements.fields import DIGEST_PATTERN
from sealroom.verification.bundle import ProofBundle
from sealroom.verification.trust import trust_policy
from sealroom.verification.verify import BundleRejected, VerificationReport, verify_bundle
from sealroom.wire import DatasetView, RequestView, RoomView

__all__ = ["AgentLimits", "build_server"]

P = ParamSpec("P")
R = TypeVar("R")

MAX_WAIT_SECONDS = 600.0
MAX_SEARCH_RESULTS = 100

INSTRUCTIONS = (
    "sealroom: learn from datasets their owners keep. Find datasets (search, show_card), "
    "ask for a computation (request), then wait and fetch the verified result (wait, result). "
    "With a named peer, psi and pjc run private protocols on a local file (if allowed). "
    "As an owner: read the inbox, approve_within_policy, reject. Rooms (rooms, room) are "
    "read-only here: joining, consenting and approving are the person's. You act only within the "
    "party's policies: anything they leave to a person is refused with the command the "
    "person runs."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLimits:
    """What the person who started the server allows the agent beyond the party's policies."""

    results_dir: Path
    allow_simulated: bool = False
    allow_publish: bool = False
    allow_protocols: bool = False


def _tool_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """A sealroom error becomes a tool error with its public message and detail."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SealroomError as exc:
            raise ToolError(exc.diagnostics()) from None

    return wrapper


def _view(view: DatasetView | RequestView) -> dict[str, Any]:
    """A coordinator view as JSON, without the signed envelope (the agent reads the fields)."""
    data = view.to_json_dict()
    data.pop("envelope", None)
    return data


def _labelled(data: dict[str, Any], *, simulated: bool) -> dict[str, Any]:
    data["simulated"] = simulated
    if simulated:
        data["warning"] = SIMULATED_BANNER
    return data


def _report(report: VerificationReport) -> dict[str, Any]:
    return {
        "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in report.checks],
        "warnings": list(report.warnings),
    }


def _room_brief(party: Party, view: RoomView) -> dict[str, Any]:
    me = next((m for m in view.members if m.party == party.party_id), None)
    return {
        "room": view.room,
        "name": view.name,
        "host": view.host,
        "template": view.template,
        "risky": view.risky,
        "expired": view.expired,
        "my_consent": None if me is None else me.consent_state,
        "runs": len(view.runs),
        "red_flags": len(view.red_flags),
    }


def _room_detail(party: Party, verified: VerifiedRoom) -> dict[str, Any]:
    """What an agent may read of a room; consent, joins and approvals stay with the person,
    and the answer names the command for each one that is waiting."""
    view, snapshot = verified.view, verified.room.statement.snapshot
    me = party.party_id
    mine = next((m for m in view.members if m.party == me), None)
    waiting: list[str] = []
    if mine is not None and mine.status == "invited":
        waiting.append(f"sealroom room join {view.room} --dataset DATASET (a local pre-check)")
    if mine is not None and mine.role != "host" and mine.consent_state != "consented":
        waiting.append(f"sealroom room summary {view.room}, then sealroom room consent {view.room}")
    for run in view.runs:
        if run.status == "pending" and me != view.host:
            waiting.append(
                f"sealroom room approve {view.room} {run.request} (if it uses your data)"
            )
    return {
        **_room_brief(party, view),
        "snapshot_digest": view.snapshot_digest,
        "purpose": snapshot.purpose,
        "allowed_queries": [
            {"id": q.id, "version": q.version, "code_digest": q.code_digest}
            for q in snapshot.allowed_queries
        ],
        "k": snapshot.k,
        "dp": snapshot.dp.model_dump(mode="json"),
        "approvers_required": snapshot.approvers_required,
        "retention_seconds": snapshot.retention_seconds,
        "expires_at": snapshot.expires_at,
        "region": snapshot.region,
        "members": [
            {"party": m.party, "role": m.role, "status": m.status, "consent": m.consent_state}
            for m in view.members
        ],
        "runs": [
            {
                "request": r.request,
                "computation": r.computation,
                "status": r.status,
                "reason": r.status_reason,
                "approvals": list(r.approvals),
            }
            for r in view.runs
        ],
        "red_flags": [f.detail for f in view.red_flags],
        "needs_person": waiting,
    }


def build_server(party: Party, *, limits: AgentLimits) -> MCPServer:
    """An MCP server whose tools act as ``party`` within ``limits``."""
    server: MCPServer = MCPServer(
        name="sealroom", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )
    results = Path(limits.results_dir)

    def tool(fn: Callable[P, R]) -> Callable[P, R]:
        server.tool()(_tool_errors(fn))
        return fn

    @tool
    def whoami() -> dict[str, Any]:
        """This party: its id (what peers name), its fingerprint (what people compare; names
        are not identities), display name, coordinator, and the limits."""
        return {
            "party_id": party.party_id,
            "fingerprint": fingerprint(party.party_id),
            "name": party.name,
            "coordinator": party.url,
            "allow_simulated": limits.allow_simulated,
            "allow_publish": limits.allow_publish,
        }

    @tool
    def computations() -> dict[str, Any]:
        """The computation library: ids, versions, privacy class, what each releases."""
        return {"computations": [c.to_json_dict() for c in party.client.computations()]}

    @tool
    def search(
        query: str | None = None,
        keywords: list[str] | None = None,
        owner: str | None = None,
        limit: int = 20,
    ) -> dict[str, Any]:
        """Published datasets by full text, keywords or owner (party id); their public cards."""
        if not 1 <= limit <= MAX_SEARCH_RESULTS:
            raise InvalidInput(f"limit must be between 1 and {MAX_SEARCH_RESULTS}")
        page = party.search(query, keywords=tuple(keywords or ()), owner=owner, limit=limit)
        return {
            "datasets": [
                {"dataset": _view(h.dataset), "score": h.score, "jaccard": h.jaccard}
                for h in page.items
            ],
            "next_cursor": page.next_cursor,
        }

    @tool
    def show_card(dataset: str) -> dict[str, Any]:
        """A dataset's public card (schema, size, topics, policy), its owner's signature checked."""
        return _view(party.show(dataset))

    @tool
    def preview_card_for_file(path: str, policy: dict[str, Any] | None = None) -> dict[str, Any]:
        """The card publishing a local file would sign (nothing is signed or sent)."""
        preview = preview_card(Path(path), policy_rules=policy, card=CardOptions())
        return {"fields": preview.fields, "rows": preview.card.row_count}

    @tool
    def publish(
        path: str, title: str, description: str = "", policy: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Publish a local file's signed card (the data stays here). Needs --allow-publish."""
        if not limits.allow_publish:
            raise PolicyDenied(
                "publishing signs a public card in this party's name, kept in the log for "
                "good; a person runs `sealroom dataset publish` (or starts `sealroom mcp "
                "--allow-publish`)",
                rule="agent-publish",
            )
        published = party.publish(Path(path), title=title, description=description, policy=policy)
        return {
            "dataset": published.dataset,
            "policy": published.policy,
            "rows": published.rows,
            "log_index": published.log_index,
        }

    @tool
    def budget(dataset: str) -> dict[str, Any]:
        """A dataset's differential-privacy budget: spent and left, in total and per requester."""
        return party.budget(dataset).model_dump(mode="json")

    def _protocol_allowed(name: str) -> None:
        if not limits.allow_protocols:
            raise PolicyDenied(
                f"{name} discloses to a peer (set sizes and what the protocol releases) outside "
                f"any dataset policy; a person runs `sealroom {name}` (or starts `sealroom mcp "
                "--allow-protocols`)",
                rule="agent-protocols",
            )

    def _cells(path: str, *columns: str) -> list[list[Any]]:
        from sealroom.connectors.files import read_table

        table = read_table(Path(path))
        for column in columns:
            if column not in table.column_names:
                have = ", ".join(table.column_names)
                raise InvalidInput(f"no column {column!r} in {path} (columns: {have})")
        return [table.column(c).to_pylist() for c in columns]

    def _kept(run: ProtocolRun) -> dict[str, Any]:
        data = run.to_dict()
        # The session id comes from the coordinator: hashed into the name, never a path part.
        name = hashlib.sha256(run.session.id.encode()).hexdigest()[:32]
        out = results / f"protocol-{name}.json"
        write_private(out, json.dumps(data, indent=2, sort_keys=True).encode())
        return {**data, "record_path": str(out)}

    @tool
    def psi(
        path: str,
        column: str,
        peer: str,
        start: bool,
        mode: Literal["cardinality", "intersection"] = "cardinality",
        threshold: int = 0,
        timeout_seconds: float = 120.0,
    ) -> dict[str, Any]:
        """Private set intersection of a local file's column with ``peer`` (a party id): start
        the run (``start``) or join the peer's. Needs --allow-protocols."""
        _protocol_allowed("psi")
        if not 0 < timeout_seconds <= MAX_WAIT_SECONDS:
            raise InvalidInput(f"timeout_seconds must be in (0, {MAX_WAIT_SECONDS:g}]")
        (cells,) = _cells(path, column)
        run = party.psi(
            [str(v).encode() for v in cells if v is not None],
            start_with=[peer] if start else (),
            join=not start,
            expect=() if start else [peer],
            mode=mode,
            threshold=threshold,
            timeout=timeout_seconds,
        )
        return _kept(run)

    @tool
    def pjc(
        path: str,
        id_column: str,
        peer: str,
        start: bool,
        value_column: str | None = None,
        min_intersection: int = 10,
        max_value: int = 1_000_000,
        dp_epsilon: str | None = None,
        timeout_seconds: float = 120.0,
    ) -> dict[str, Any]:
        """Private intersection-sum with ``peer``: with ``value_column`` this party's values are
        summed over the common ids (it learns only the other set's size); without, it learns
        the count and the sum. Needs --allow-protocols."""
        _protocol_allowed("pjc")
        if not 0 < timeout_seconds <= MAX_WAIT_SECONDS:
            raise InvalidInput(f"timeout_seconds must be in (0, {MAX_WAIT_SECONDS:g}]")
        cells = _cells(path, id_column, *([value_column] if value_column else []))
        if any(v is None for v in cells[0]):
            raise InvalidInput(f"column {id_column!r} has empty cells")
        values: list[int] | None = None
        if value_column is not None:
            if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in cells[1]):
                raise InvalidInput(f"column {value_column!r} must hold non-negative integers")
            values = cells[1]
        run = party.pjc(
            [str(v).encode() for v in cells[0]],
            values,
            start_with=[peer] if start else (),
            join=not start,
            expect=() if start else [peer],
            min_intersection=min_intersection,
            max_value=max_value,
            dp_epsilon=dp_epsilon,
            timeout=timeout_seconds,
        )
        return _kept(run)

    @tool
    def request(
        computation: str, datasets: list[str], params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Ask for a computation on datasets; their owners approve by hand or by policy."""
        return _view(party.request(computation, datasets, params or {}))

    @tool
    def inbox() -> dict[str, Any]:
        """Requests on this party's datasets waiting for its decision, with full parameters."""
        return {"requests": [_view(v) for v in party.inbox()]}

    @tool
    def approve_within_policy() -> dict[str, Any]:
        """Approve exactly the inbox items this party's policies approve automatically (and
        seal the data to the verified enclave); list the rest, which need a person."""
        done = party.auto_approve(allow_simulated=limits.allow_simulated)
        items = [
            {
                "request": a.request,
                "dataset": a.dataset,
                "action": a.action,
                "reason": a.reason,
                **(
                    {}
                    if a.action == "approved"
                    else {"needs_person": f"sealroom approve {a.request} (or reject it)"}
                ),
            }
            for a in done
        ]
        return _labelled(
            {"items": items}, simulated=limits.allow_simulated and any(a.result for a in done)
        )

    @tool
    def reject(request: str, reason: str) -> dict[str, Any]:
        """Reject a request on this party's data (one rejection ends it)."""
        return _view(party.reject(request, reason=reason))

    @tool
    def withdraw(request: str, reason: str = "withdrawn by the requester") -> dict[str, Any]:
        """Withdraw this party's own pending or approved request."""
        return _view(party.withdraw(request, reason=reason))

    @tool
    def status(request: str) -> dict[str, Any]:
        """A request's status, its inputs' decisions and history."""
        return _view(party.status(request))

    @tool
    def wait(request: str, timeout_seconds: float = 60.0) -> dict[str, Any]:
        """Wait until the request is final (completed, failed, rejected, expired, withdrawn)."""
        if not 0 < timeout_seconds <= MAX_WAIT_SECONDS:
            raise InvalidInput(f"timeout_seconds must be in (0, {MAX_WAIT_SECONDS:g}]")
        return _view(party.wait(request, timeout=timeout_seconds))

    @tool
    def result(request: str) -> dict[str, Any]:
        """Download, open and verify this party's result; keep result.json and bundle.json."""
        fetched = party.result(
            request, results / _safe_name(request), allow_simulated=limits.allow_simulated
        )
        return _labelled(
            {
                "request": fetched.request,
                "result": fetched.body,
                "verified": True,
                "verification": _report(fetched.report),
                "bundle_path": str(fetched.bundle_path),
            },
            simulated=fetched.simulated,
        )

    @tool
    def verify(bundle_path: str) -> dict[str, Any]:
        """Verify a proof bundle offline; a failed check is an error naming it."""
        raw = Path(bundle_path).read_bytes()
        try:
            report = verify_bundle(
                ProofBundle.from_json(raw),
                trust=trust_policy(allow_simulated=limits.allow_simulated),
            )
        except BundleRejected as exc:
            failed = "; ".join(f"{c.name}: {c.detail}" for c in exc.report.failures)
            raise ToolError(f"the proof bundle did not verify: {failed}") from None
        return _labelled(
            {"verified": True, "verification": _report(report)}, simulated=report.simulated
        )

    @tool
    def rooms() -> dict[str, Any]:
        """The rooms this party hosts or is invited to, each checked against its signed room."""
        return {"rooms": [_room_brief(party, v) for v in party.rooms.list()]}

    @tool
    def room(room: str) -> dict[str, Any]:
        """One room, checked against its signed statements: its policy snapshot (purpose,
        allowed queries with their code, k, DP, retention, expiry, region), members and their
        consent, runs and approvals, red flags, and what is left to a person here."""
        verified = party.rooms.show(_digest(room, "room"))
        return _room_detail(party, verified)

    @server.resource("sealroom://cards/{dataset}", name="card", mime_type="application/json")
    def card(dataset: str) -> str:
        """A dataset's public card."""
        try:
            return json.dumps(_view(party.show(dataset)), sort_keys=True)
        except SealroomError as exc:
            raise ResourceError(exc.diagnostics()) from None

    @server.resource("sealroom://receipts/{request}", name="receipt", mime_type="application/json")
    def receipt(request: str) -> str:
        """The proof bundle (receipt, evidence, log proofs) of a result fetched with ``result``."""
        path = results / _safe_name(request) / "bundle.json"
        if not path.is_file():
            raise ResourceError(
                NotFound(f"no fetched result for {request}; call the result tool").diagnostics()
            )
        return path.read_text(encoding="utf-8")

    return server


def _digest(value: str, what: str) -> str:
    """``value`` if it is an id (``sha256:<hex>``); anything else is refused."""
    if re.fullmatch(DIGEST_PATTERN, value) is None:
        raise InvalidInput(f"not a {what} id (sha256:<64 hex digits>)")
    return value


def _safe_name(request: str) -> str:
    """A request id as one path component."""
    return _digest(request, "request").removeprefix("sha256:")


def serve(
    party: Party,
    *,
    limits: AgentLimits,
    transport: str,
    host: str = "127.0.0.1",
    port: int = 8765,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Run until the client disconnects (stdio) or the process is stopped (HTTP)."""
    server = build_server(party, limits=limits)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port, **dict(options or {}))
