"""Computation requests: creation (with the policy pre-check), reading, withdrawal, results
and proof bundles (the owners' decisions and uploads are in :mod:`.approvals`).

The coordinator checks what it can (signatures, signers, digests, policies, the
status machine in :mod:`.state`), but it is not trusted: clients and the
enclave check again.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, or_, select

from sealroom.coordinator.log import reader_log
from sealroom.coordinator.rooms import check_room_run, record_room_run, room_k, room_of_request
from sealroom.coordinator.state import (
    DEFAULT_REQUEST_TTL,
    OPEN,
    State,
    Stored,
    content_roots,
    history,
    job_parts,
    latest_checkpoint,
    request_row,
    request_view,
    rules,
    schemas,
    statement,
)
from sealroom.crypto.keys import PartyId, b64encode
from sealroom.errors import Conflict, InvalidInput, NotFound, PolicyDenied, SignatureInvalid
from sealroom.policy.compose import decide_in_room
from sealroom.policy.rules import Decision, PolicyRules, privacy_context
from sealroom.protocols.queries import ProtocolQuery, protocol_query
from sealroom.statements import (
    ComputationRequest,
    EnclaveEvidence,
    Envelope,
    Receipt,
)
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.storage.schema import (
    datasets,
    policies,
    request_inputs,
    request_recipients,
    requests,
    results,
    statements,
)
from sealroom.verification.assemble import assemble_bundle
from sealroom.verification.bundle import ProofBundle
from sealroom.wire import DraftView, RequestView, ResultView

__all__ = ["KEYWORD_OVERLAP_COMPUTATION", "Requests"]

KEYWORD_OVERLAP_COMPUTATION = "topic-overlap"
_ROLES = ("requester", "owner", "recipient")
_MAX_LISTED = 500


class Requests:
    __slots__ = ("_state",)

    def __init__(self, state: State) -> None:
        self._state = state

    # --- creation -------------------------------------------------------------------------

    def create(self, env: Envelope, *, caller: PartyId, now: int) -> Stored[RequestView]:
        """Store a signed request after checking it; a policy that denies rejects it at once."""
        req = env.open(ComputationRequest).statement
        if req.requester != caller:
            raise SignatureInvalid("a request must be sent by its requester")
        query = protocol_query(req.computation)
        if query is not None:
            return self._create_protocol_run(env, req, query, now=now)
        computation = self._state.computation(req)
        params = computation.parse_params(req.parameters)
        cost = computation.cost(params)
        computation.check_inputs(len(req.inputs))
        if req.expires_at <= now:
            raise InvalidInput("the request has already expired")
        with write_transaction(self._state.engine) as conn:
            existing = conn.execute(
                select(requests.c.request).where(requests.c.request == env.digest)
            ).first()
            if existing is not None:
                return Stored(request_view(conn, env.digest), created=False)
            rows = _active_inputs(conn, req)
            owners = [str(rows[ds].owner) for ds in req.inputs]
            if computation.release == "requester":
                expected = {req.requester}
            else:
                expected = {req.requester, *owners}
            if set(req.recipients) != expected:
                raise InvalidInput(
                    f"{computation.id} releases to {computation.release}: recipients must be "
                    f"exactly {sorted(expected)}"
                )
            room = _room_rules(conn, req)
            in_room = room_of_request(conn, req)
            if in_room is not None:
                check_room_run(conn, in_room, req, epsilon=cost.epsilon, now=now)
            roots = content_roots(conn, req.inputs)
            checks: list[tuple[str, Decision]] = []
            effective: list[PolicyRules | None] = []
            for ds in req.inputs:
                decision, own = decide_in_room(
                    rules(conn, rows[ds].policy),
                    room,
                    computation=computation,
                    request=computation.request_shape(
                        params, partners=[roots[d] for d in req.inputs if d != ds]
                    ),
                    requester=req.requester,
                    now=now,
                    cost=cost,
                )
                checks.append((ds, decision))
                effective.append(own)
            # The computation's own admission (e.g. the SQL grammar) on the attested schemas:
            # the same function the enclave runs on the data.
            refused: str | None = None
            try:
                computation.admit(
                    params, schemas(conn, req.inputs), privacy_context(effective, cost)
                )
            except PolicyDenied as exc:
                refused = (
                    "the computation refuses it on its inputs' attested schemas and policies: "
                    f"{exc.detail}"
                )
            self._state.store(conn, env, now=now)
            precheck = [
                {
                    "dataset": ds,
                    "allowed": d.allowed,
                    "automatic": d.automatic,
                    "reasons": list(d.reasons),
                }
                for ds, d in checks
            ]
            _insert(conn, env.digest, req, owners, precheck, now)
            if in_room is not None:
                record_room_run(conn, in_room, env.digest, req, now)
            denied = [(ds, d) for ds, d in checks if not d.allowed]
            if refused is not None:
                self._state.transition(conn, env.digest, ("pending",), "rejected", refused, now)
            elif denied:
                ds, d = denied[0]
                self._state.transition(
                    conn,
                    env.digest,
                    ("pending",),
                    "rejected",
                    f"the policy of dataset {ds}"
                    f"{' (with the room policy)' if req.room_policy else ''} denies it: "
                    f"{d.reason}",
                    now,
                )
            return Stored(request_view(conn, env.digest), created=True)

    def _create_protocol_run(
        self, env: Envelope, req: ComputationRequest, query: ProtocolQuery, *, now: int
    ) -> Stored[RequestView]:
        """A no-trust protocol run (:mod:`sealroom.protocols.queries`): only in a room, under
        the room's checks; its participants follow from the request and are its recipients.

        No policy engine approves it (no enclave enforces a policy on its release): every
        owner signs by hand, and the room's dual approval applies as for any run."""
        if req.expires_at <= now:
            raise InvalidInput("the request has already expired")
        if req.terms or req.max_price is not None:
            raise InvalidInput(
                f"{query.id} is run by the parties themselves: it carries no terms or price"
            )
        with write_transaction(self._state.engine) as conn:
            if conn.execute(
                select(requests.c.request).where(requests.c.request == env.digest)
            ).first():
                return Stored(request_view(conn, env.digest), created=False)
            in_room = room_of_request(conn, req)
            if in_room is None:
                raise InvalidInput(
                    f"{query.id} runs only in a room: name the room's policy (room_policy)"
                )
            rows = _active_inputs(conn, req)
            owners = [str(rows[ds].owner) for ds in req.inputs]
            roles = query.roles(req.requester, owners)
            query.parameters(req.parameters, k=room_k(conn, in_room), roles=roles)
            parties = [p for _, p in roles]
            if sorted(req.recipients) != sorted(parties):
                raise InvalidInput(
                    f"{query.id}: every participant learns what the protocol gives it, so the "
                    f"recipients must be exactly the participants {sorted(parties)}"
                )
            check_room_run(conn, in_room, req, epsilon=Decimal(0), now=now)
            self._state.store(conn, env, now=now)
            _insert(conn, env.digest, req, owners, [], now)
            record_room_run(conn, in_room, env.digest, req, now)
            return Stored(request_view(conn, env.digest), created=True)

    def keyword_overlap(
        self, a: str, b: str, request: Envelope | None, *, caller: PartyId, now: int
    ) -> Stored[RequestView] | DraftView:
        """The topic-overlap shortcut: a draft to sign, or (with ``request``) its creation."""
        if a == b:
            raise InvalidInput("dataset_a and dataset_b must differ")
        computation = self._state.registry.get(KEYWORD_OVERLAP_COMPUTATION)
        if request is not None:
            req = request.open(ComputationRequest).statement
            if req.computation.id != computation.id or req.inputs != (a, b):
                raise InvalidInput(
                    f"the request is not {computation.id} on exactly [dataset_a, dataset_b]"
                )
            return self.create(request, caller=caller, now=now)
        with read_transaction(self._state.engine) as conn:
            owners = []
            for ds in (a, b):
                row = conn.execute(
                    select(datasets.c.owner, datasets.c.status).where(datasets.c.dataset == ds)
                ).first()
                if row is None:
                    raise NotFound(f"no dataset {ds}")
                if row.status != "active":
                    raise Conflict(f"dataset {ds} has been withdrawn")
                owners.append(str(row.owner))
        if computation.release == "requester":
            recipients: list[str] = [caller]
        else:
            recipients = list(dict.fromkeys([str(caller), *owners]))
        params = computation.params.model_validate({}).model_dump(mode="json")
        draft = ComputationRequest.model_validate(
            {
                "requester": caller,
                "computation": computation.ref(),
                "parameters": params,
                "inputs": (a, b),
                "recipients": tuple(recipients),
                "nonce": b64encode(os.urandom(16)),
                "created_at": now,
                "expires_at": now + DEFAULT_REQUEST_TTL,
            }
        )
        return DraftView(draft=draft.model_dump(mode="json"))

    # --- reading ----------------------------------------------------------------------------

    def get(self, request: str, *, caller: PartyId, now: int) -> RequestView:
        self._state.sweep(now=now)
        with read_transaction(self._state.engine) as conn:
            request_row(conn, request, caller)
            return request_view(conn, request)

    def listing(
        self, *, caller: PartyId, role: str | None, status: str | None, now: int
    ) -> tuple[RequestView, ...]:
        """The newest requests the caller takes part in (as ``role``, or in any role)."""
        self._state.sweep(now=now)
        if role is not None and role not in _ROLES:
            raise InvalidInput("role must be requester, owner or recipient")
        as_requester = select(requests.c.request).where(requests.c.requester == caller)
        as_owner = select(request_inputs.c.request).where(request_inputs.c.owner == caller)
        as_recipient = select(request_recipients.c.request).where(
            request_recipients.c.party == caller
        )
        chosen = {"requester": [as_requester], "owner": [as_owner], "recipient": [as_recipient]}
        parts = chosen[role] if role is not None else [as_requester, as_owner, as_recipient]
        stmt = select(requests.c.request).where(or_(*(requests.c.request.in_(p) for p in parts)))
        if status is not None:
            stmt = stmt.where(requests.c.status == status)
        stmt = stmt.order_by(requests.c.seq.desc()).limit(_MAX_LISTED)
        with read_transaction(self._state.engine) as conn:
            ids = [str(r) for (r,) in conn.execute(stmt)]
            return tuple(request_view(conn, r) for r in ids)

    def inbox(self, *, caller: PartyId, now: int) -> tuple[RequestView, ...]:
        """Pending requests with an input of the caller's still waiting for its decision."""
        self._state.sweep(now=now)
        stmt = (
            select(requests.c.request)
            .join(request_inputs, request_inputs.c.request == requests.c.request)
            .where(
                request_inputs.c.owner == caller,
                request_inputs.c.decision == "pending",
                requests.c.status == "pending",
            )
            .group_by(requests.c.request, requests.c.seq)
            .order_by(requests.c.seq)
        )
        with read_transaction(self._state.engine) as conn:
            ids = [str(r) for (r,) in conn.execute(stmt.limit(_MAX_LISTED))]
            return tuple(request_view(conn, r) for r in ids)

    def withdraw(self, request: str, reason: str, *, caller: PartyId, now: int) -> RequestView:
        self._state.sweep(now=now)
        with write_transaction(self._state.engine) as conn:
            row = request_row(conn, request, caller)
            if row.requester != caller:
                raise PolicyDenied("only the requester may withdraw a request")
            self._state.transition(
                conn,
                request,
                OPEN,
                "withdrawn",
                f"withdrawn by the requester: {reason.strip()}",
                now,
            )
            return request_view(conn, request)

    # --- results ----------------------------------------------------------------------------

    def result(self, request: str, *, caller: PartyId, now: int) -> ResultView:
        """The caller's sealed output and the receipt, once the request completed."""
        self._state.sweep(now=now)
        with read_transaction(self._state.engine) as conn:
            req_row = request_row(conn, request, caller)
            if req_row.results_deleted_at is not None:
                raise NotFound(
                    f"the result was deleted by retention at {int(req_row.results_deleted_at)} "
                    f"(the inputs' policies keep results {int(req_row.retention_seconds)} s "
                    "after completion)"
                )
            row = conn.execute(
                select(results.c.sealed, results.c.release_key, requests.c.receipt)
                .join(requests, requests.c.request == results.c.request)
                .where(
                    results.c.request == request,
                    results.c.recipient == caller,
                    requests.c.status == "completed",
                )
            ).first()
            if row is None:
                raise NotFound("no result for you on this request (yet)")
            receipt, _ = statement(conn, str(row.receipt), Receipt.TYPE)
        return ResultView(
            request=request,
            recipient=caller,
            sealed=bytes(row.sealed),
            receipt=receipt,
            release_key=None if row.release_key is None else bytes(row.release_key),
        )

    def bundle(self, request: str, *, caller: PartyId, now: int) -> ProofBundle:
        """The proof bundle (without outputs) against the current checkpoint, cosigned by the
        witnesses that vouch for it."""
        witnessing = self._state.witnessing
        cosigned = witnessing.latest() if witnessing is not None else None
        with read_transaction(self._state.engine) as conn:
            row = request_row(conn, request, caller)
            if row.status != "completed" or row.receipt is None:
                raise NotFound("the request has no receipt yet")
            receipt, _ = statement(conn, str(row.receipt), Receipt.TYPE)
            rec = Receipt.parse_payload(receipt.payload)
            evidence, _ = statement(conn, rec.evidence, EnclaveEvidence.TYPE)
            refs = job_parts(conn, request).digests(request)
            stmts = [
                Envelope.from_json(bytes(r.envelope))
                for r in conn.execute(
                    select(statements.c.digest, statements.c.envelope).where(
                        statements.c.digest.in_(refs)
                    )
                )
            ]
            order = {d: i for i, d in enumerate(refs)}
            stmts.sort(key=lambda e: order[e.digest])
            logged = conn.execute(
                select(statements.c.digest, statements.c.log_index, statements.c.log_salt).where(
                    statements.c.digest.in_([*refs, rec.evidence, row.receipt])
                )
            ).all()
            indices = {str(r.digest): int(r.log_index) for r in logged}
            salts = {str(r.digest): bytes(r.log_salt) for r in logged if r.log_salt is not None}
            note = cosigned or latest_checkpoint(conn)
        return assemble_bundle(
            receipt=receipt,
            evidence=evidence,
            statements=stmts,
            log=reader_log(self._state.engine),
            indices=indices,
            checkpoint=note,
            verifier_key=self._state.signer.verifier.vkey,
            salts=salts,
        )


def _active_inputs(conn: Connection, req: ComputationRequest) -> dict[str, Row[Any]]:
    """The request's input datasets' rows; each must exist and not be withdrawn."""
    rows = {
        str(r.dataset): r
        for r in conn.execute(select(datasets).where(datasets.c.dataset.in_(list(req.inputs))))
    }
    for ds in req.inputs:
        if ds not in rows:
            raise NotFound(f"input dataset {ds} does not exist")
        if rows[ds].status != "active":
            raise Conflict(f"input dataset {ds} has been withdrawn")
    return rows


def _insert(
    conn: Connection,
    request: str,
    req: ComputationRequest,
    owners: list[str],
    precheck: list[dict[str, object]],
    now: int,
) -> None:
    """The request's rows: pending, its inputs (each awaiting its owner) and recipients."""
    conn.execute(
        requests.insert().values(
            request=request,
            requester=req.requester,
            computation_id=req.computation.id,
            computation_version=req.computation.version,
            status="pending",
            status_reason="waiting for the input owners",
            precheck=json.dumps(precheck, separators=(",", ":"), sort_keys=True),
            created_at=req.created_at,
            expires_at=req.expires_at,
            registered_at=now,
        )
    )
    conn.execute(
        request_inputs.insert(),
        [
            {
                "request": request,
                "dataset": ds,
                "position": i,
                "owner": owners[i],
                "decision": "pending",
            }
            for i, ds in enumerate(req.inputs)
        ],
    )
    conn.execute(
        request_recipients.insert(),
        [{"request": request, "party": p, "position": i} for i, p in enumerate(req.recipients)],
    )
    history(conn, request, "pending", "request received", now)


def _room_rules(conn: Connection, req: ComputationRequest) -> PolicyRules | None:
    """The rules of the room policy ``req`` names (stored first), or None."""
    if req.room_policy is None:
        return None
    known = conn.execute(
        select(policies.c.policy).where(policies.c.policy == req.room_policy)
    ).first()
    if known is None:
        raise InvalidInput(
            f"the request names room policy {req.room_policy}, which is not stored: "
            "publish it with POST /v1/policies first"
        )
    return rules(conn, req.room_policy)
