"""What the coordinator's resource services share: the statement store, the request status
machine, who may see a request, and the views more than one resource returns.

Every state change is one database transaction that also appends the statements
it accepted to the transparency log and signs a new checkpoint
(:meth:`State.store`, in the caller's transaction), so state and log never
disagree.

Authorization: a party sees a request only if it is its requester, an input
owner or a recipient (or the enclave that claimed it); otherwise the request
does not exist for it (:class:`NotFound`, never a 403 that leaks existence).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, Engine, Row, and_, delete, exists, func, or_, select, update

from sealroom.computations.base import Computation, SchemaText
from sealroom.computations.registry import Registry
from sealroom.coordinator.log import append_statement
from sealroom.coordinator.witnessing import Witnessing
from sealroom.crypto.keys import PartyId, PublicIdentity, b64encode, fingerprint
from sealroom.errors import AuthenticationFailed, Conflict, InvalidInput, NameTaken, NotFound
from sealroom.policy.rules import PolicyRules
from sealroom.statements import (
    ComputationRequest,
    DatasetAttestation,
    Envelope,
    Policy,
    is_public,
)
from sealroom.statements.deletion import SealedHash
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.storage.schema import (
    datasets,
    erasures,
    input_parts,
    input_uploads,
    jobs,
    nonces,
    parties,
    request_blobs,
    request_history,
    request_inputs,
    request_recipients,
    requests,
    results,
    statements,
)
from sealroom.text import name_key
from sealroom.transparency.checkpoint import Checkpoint, NoteSigner, split_note
from sealroom.transparency.entries import SALT_SIZE
from sealroom.transparency.sqlstore import checkpoints
from sealroom.wire import HistoryItem, PartyView, Precheck, RequestInput, RequestView, WireModel

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_REQUEST_TTL",
    "ENDED",
    "MAX_JOB_ATTEMPTS",
    "OPEN",
    "DbNonceStore",
    "JobParts",
    "State",
    "Stored",
    "TransitionHooks",
    "checkpoint_size",
    "history",
    "job_parts",
    "latest_checkpoint",
    "party_view",
    "put_party",
    "request_row",
    "request_view",
    "rules",
    "statement",
    "transition",
]

DEFAULT_LEASE_SECONDS = 300
DEFAULT_REQUEST_TTL = 7 * 86_400
# Claims of one request before a lapsed lease fails it instead of re-queueing it.
MAX_JOB_ATTEMPTS = 5
OPEN = ("pending", "approved")
ENDED = ("completed", "failed", "rejected", "withdrawn", "expired")

V = TypeVar("V", bound=WireModel)


@dataclass(frozen=True, slots=True)
class Stored(Generic[V]):
    """A service result and whether it created something (201) or found it stored (200)."""

    view: V
    created: bool


class DbNonceStore:
    """Request nonces in the database: accepted once per party, purged after they expire."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def remember(self, party: PartyId, nonce: str, *, expires_at: int, now: int) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(delete(nonces).where(nonces.c.expires_at < now))
            seen = conn.execute(
                select(nonces.c.party).where(nonces.c.party == party, nonces.c.nonce == nonce)
            ).first()
            if seen is not None:
                raise AuthenticationFailed("replayed request: this nonce was already used")
            conn.execute(nonces.insert().values(party=party, nonce=nonce, expires_at=expires_at))


class TransitionHooks(Protocol):
    """What moves money when a request changes status (:class:`~.credits.CreditLedger`)."""

    def escrow(self, state: State, conn: Connection, request: str, now: int) -> str | None:
        """Escrow the request's price as it is approved; a reason to reject it if unpaid."""
        ...

    def close(self, state: State, conn: Connection, request: str, to: str, now: int) -> None:
        """Settle (completed) or refund (any other end) the request's escrow."""
        ...


@dataclass(frozen=True, slots=True)
class State:
    """The database, the computations and the log key every resource service works with."""

    engine: Engine
    registry: Registry
    signer: NoteSigner
    # Gathers witness cosignatures on the checkpoints served (None: no witnesses configured).
    witnessing: Witnessing | None = None
    # Fresh salts for the log commitments of private statements (injectable for tests).
    salts: Callable[[int], bytes] = os.urandom
    # Escrow, settlement and refunds on request transitions (None: no credits ledger).
    credits: TransitionHooks | None = None

    def transition(
        self,
        conn: Connection,
        request: str,
        allowed_from: Sequence[str],
        to: str,
        reason: str,
        now: int,
    ) -> None:
        """:func:`transition` with the credits ledger's hooks, in the same transaction: a
        request that becomes approved escrows its price (or is rejected if its requester
        cannot pay), and an ended one settles or refunds its escrow."""
        if self.credits is not None and to == "approved":
            refusal = self.credits.escrow(self, conn, request, now)
            if refusal is not None:
                to, reason = "rejected", refusal
        transition(conn, request, allowed_from, to, reason, now)
        if self.credits is not None and to in ENDED:
            self.credits.close(self, conn, request, to, now)

    def store(self, conn: Connection, env: Envelope, *, now: int) -> tuple[int, bool]:
        """Store and log a verified statement once, in ``conn``'s transaction: (log index, created).

        A private statement (:func:`~sealroom.statements.is_public`) is logged as a salted
        commitment; its salt is kept beside it for the parties who may open it.
        """
        row = conn.execute(
            select(statements.c.log_index).where(statements.c.digest == env.digest)
        ).first()
        if row is not None:
            return int(row[0]), False
        salt = None if is_public(env.type) else self.salts(SALT_SIZE)
        index, _ = append_statement(conn, env, self.signer, salt=salt)
        conn.execute(
            statements.insert().values(
                digest=env.digest,
                type=env.type,
                signer=env.signer.party_id,
                envelope=env.to_json(),
                log_index=index,
                stored_at=now,
                log_salt=salt,
            )
        )
        return index, True

    def ping(self) -> None:
        """Reach the database (health checks)."""
        with read_transaction(self.engine) as conn:
            conn.execute(select(func.count()).select_from(parties)).scalar_one()

    def computation(self, req: ComputationRequest) -> Computation:
        """The computation ``req`` names (unknown or stale code is bad input, not a 404)."""
        try:
            return self.registry.resolve(req.computation)
        except NotFound as exc:
            raise InvalidInput(exc.detail) from None

    def sweep(self, *, now: int) -> int:
        """Expire requests past ``expires_at``, put jobs whose lease ran out back in the queue
        (fail them after :data:`MAX_JOB_ATTEMPTS` claims), and delete the sealed results of
        completed requests whose retention has passed; return how many.

        A re-queued job is safe to run again: a release is stored only with its budget
        charges, at most one per (request, dataset) (:mod:`sealroom.coordinator.ledger`)."""
        retention_due = and_(
            requests.c.results_until <= now,
            requests.c.results_deleted_at.is_(None),
            requests.c.status == "completed",
        )
        # A protocol run (no enclave job) that the parties started and never completed.
        stalled = and_(
            requests.c.status == "running",
            requests.c.expires_at <= now,
            ~exists().where(jobs.c.request == requests.c.request),
        )
        with read_transaction(self.engine) as conn:
            due = conn.execute(
                select(func.count())
                .select_from(requests)
                .where(
                    or_(
                        retention_due,
                        stalled,
                        and_(requests.c.status.in_(OPEN), requests.c.expires_at <= now),
                        and_(
                            requests.c.status == "running",
                            exists().where(
                                jobs.c.request == requests.c.request, jobs.c.lease_until <= now
                            ),
                        ),
                    )
                )
            ).scalar_one()
        if not due:
            return 0
        with write_transaction(self.engine) as conn:
            expired = conn.execute(
                select(requests.c.request).where(
                    requests.c.status.in_(OPEN), requests.c.expires_at <= now
                )
            ).all()
            for (req,) in expired:
                self.transition(conn, str(req), OPEN, "expired", "the request expired", now)
            lapsed = conn.execute(
                select(requests.c.request, jobs.c.attempts)
                .join(jobs, jobs.c.request == requests.c.request)
                .where(requests.c.status == "running", jobs.c.lease_until <= now)
            ).all()
            for req, attempts in lapsed:
                if int(attempts) < MAX_JOB_ATTEMPTS:
                    self.transition(
                        conn,
                        str(req),
                        ("running",),
                        "approved",
                        f"the enclave's lease ran out (claim {int(attempts)}); queued again",
                        now,
                    )
                else:
                    self.transition(
                        conn,
                        str(req),
                        ("running",),
                        "failed",
                        f"the enclave did not finish in time ({int(attempts)} claims)",
                        now,
                    )
            unfinished = conn.execute(select(requests.c.request).where(stalled)).all()
            for (req,) in unfinished:
                self.transition(
                    conn,
                    str(req),
                    ("running",),
                    "failed",
                    "the protocol run did not hand in its receipts before the request expired",
                    now,
                )
            retained = conn.execute(
                select(requests.c.request, requests.c.retention_seconds).where(retention_due)
            ).all()
            for req, seconds in retained:
                reason = f"results deleted after retention of {int(seconds)} s"
                erase_results(conn, str(req), reason=reason, now=now)
                erase_sealed_inputs(conn, str(req), reason=reason, now=now)
                conn.execute(
                    update(requests).where(requests.c.request == req).values(results_deleted_at=now)
                )
                # Recorded without a status change: the request stays completed.
                history(conn, str(req), "completed", reason, now)
            return len(expired) + len(lapsed) + len(unfinished) + len(retained)


# --- statements and policies ----------------------------------------------------------------


def statement(conn: Connection, digest: str, kind: str) -> tuple[Envelope, int]:
    """A stored statement of type ``kind`` and its log index, or :class:`NotFound`."""
    row = conn.execute(
        select(statements.c.envelope, statements.c.log_index).where(
            statements.c.digest == digest, statements.c.type == kind
        )
    ).first()
    if row is None:
        raise NotFound(f"no {kind} {digest}")
    return Envelope.from_json(bytes(row[0])), int(row[1])


def content_roots(conn: Connection, inputs: Sequence[str]) -> dict[str, str]:
    """Each input's content commitment root (what a policy pins partner data by)."""
    return {ds: _attestation(conn, ds).commitment.root for ds in inputs}


def schemas(conn: Connection, inputs: Sequence[str]) -> list[SchemaText]:
    """Each input's attested schema, in the form computations admit requests on."""
    return [tuple((c.name, c.type) for c in _attestation(conn, ds).schema_) for ds in inputs]


def _attestation(conn: Connection, dataset: str) -> DatasetAttestation:
    return DatasetAttestation.parse_payload(
        statement(conn, dataset, DatasetAttestation.TYPE)[0].payload
    )


def rules(conn: Connection, policy: str | None) -> PolicyRules | None:
    """The parsed rules of a stored policy, or None for no policy."""
    if policy is None:
        return None
    env, _ = statement(conn, policy, Policy.TYPE)
    return PolicyRules.parse(Policy.parse_payload(env.payload).rules)


# --- parties --------------------------------------------------------------------------------


def party_view(row: Any) -> PartyView:
    return PartyView(
        party=row.party,
        name=row.name,
        fingerprint=fingerprint(row.party),
        signing_key=b64encode(bytes(row.signing_key)),
        sealing_key=b64encode(bytes(row.sealing_key)),
        kem_key=None if row.kem_key is None else b64encode(bytes(row.kem_key)),
        kind=row.kind,
        registered_at=int(row.registered_at),
    )


def put_party(
    conn: Connection, keys: PublicIdentity, *, name: str, kind: str, now: int
) -> Stored[PartyView]:
    """Register ``keys`` once; the same keys again under another name or kind is a conflict,
    and so is a party name (compared as :func:`name_key`) that another party holds."""
    row = conn.execute(select(parties).where(parties.c.party == keys.party_id)).first()
    if row is not None:
        if row.name != name or row.kind != kind:
            raise Conflict(
                f"party {keys.party_id} is already registered as {row.kind} {row.name!r}"
            )
        return Stored(party_view(row), created=False)
    key = name_key(name) if kind == "party" else None
    if key is not None:
        holder = conn.execute(select(parties.c.party).where(parties.c.name_key == key)).first()
        if holder is not None:
            raise NameTaken(
                f"the name {name!r} is taken on this coordinator by party "
                f"{fingerprint(holder.party)}; register under another name"
            )
    conn.execute(
        parties.insert().values(
            party=keys.party_id,
            kind=kind,
            name=name,
            name_key=key,
            signing_key=keys.signing_key,
            sealing_key=keys.sealing_key,
            kem_key=keys.kem_key,
            registered_at=now,
        )
    )
    row = conn.execute(select(parties).where(parties.c.party == keys.party_id)).one()
    return Stored(party_view(row), created=True)


# --- the request status machine -------------------------------------------------------------


def history(conn: Connection, request: str, status: str, reason: str, now: int) -> None:
    conn.execute(
        request_history.insert().values(request=request, status=status, at=now, reason=reason)
    )


def transition(
    conn: Connection, request: str, allowed_from: Sequence[str], to: str, reason: str, now: int
) -> None:
    """Move ``request`` to ``to`` from one of ``allowed_from``, or raise :class:`Conflict`."""
    moved = conn.execute(
        update(requests)
        .where(requests.c.request == request, requests.c.status.in_(list(allowed_from)))
        .values(status=to, status_reason=reason)
    )
    if moved.rowcount != 1:
        current = conn.execute(
            select(requests.c.status).where(requests.c.request == request)
        ).scalar_one_or_none()
        raise Conflict(f"the request is {current}; it cannot become {to}")
    history(conn, request, to, reason, now)
    if to in ENDED:
        # No job can use them any more: sealed inputs go when the request ends, however.
        erase_sealed_inputs(conn, request, reason=f"the request ended ({to})", now=now)


def erase_sealed_inputs(conn: Connection, request: str, *, reason: str, now: int) -> int:
    """Delete the request's sealed inputs, recording each one's digest and size first."""
    rows = conn.execute(
        select(request_blobs.c.dataset, request_blobs.c.sealed).where(
            request_blobs.c.request == request
        )
    ).all()
    _record_erasures(
        conn, request, "sealed-input", [(r[0], r[1]) for r in rows], reason=reason, now=now
    )
    conn.execute(delete(request_blobs).where(request_blobs.c.request == request))
    return len(rows) + drop_sealed_uploads(conn, request, reason=reason, now=now)


def drop_sealed_uploads(conn: Connection, request: str, *, reason: str, now: int) -> int:
    """Delete the chunked uploads (and their parts) of ``request``, recording each one's
    digest and size first."""
    rows = conn.execute(
        select(input_uploads.c.upload, input_uploads.c.dataset)
        .where(input_uploads.c.request == request)
        .order_by(input_uploads.c.dataset)
    ).all()
    for upload, dataset in rows:
        erase_upload(conn, request, str(upload), str(dataset), reason=reason, now=now)
    return len(rows)


def erase_upload(
    conn: Connection, request: str, upload: str, dataset: str, *, reason: str, now: int
) -> None:
    """Delete one chunked upload and its parts, recording the erasure of what was held.

    The digest is :class:`~sealroom.statements.SealedHash` over the held parts in order, one
    part read at a time (an input may be gigabytes): for a completed upload, the same name
    the enclave gives the stream it fetched. An unfinished upload is recorded only if any
    part arrived, over the parts that did.
    """
    indices = (
        conn.execute(
            select(input_parts.c.part)
            .where(input_parts.c.upload == upload)
            .order_by(input_parts.c.part)
        )
        .scalars()
        .all()
    )
    if indices:
        hashed = SealedHash()
        for index in indices:
            part = conn.execute(
                select(input_parts.c.sealed).where(
                    input_parts.c.upload == upload, input_parts.c.part == index
                )
            ).scalar_one()
            hashed.update(bytes(part))
        _record_digests(conn, request, "sealed-input", [(dataset, hashed)], reason=reason, now=now)
    conn.execute(delete(input_parts).where(input_parts.c.upload == upload))
    conn.execute(delete(input_uploads).where(input_uploads.c.upload == upload))


def erase_results(conn: Connection, request: str, *, reason: str, now: int) -> int:
    """Delete the request's sealed results, recording each one's digest and size first."""
    rows = conn.execute(
        select(results.c.recipient, results.c.sealed).where(results.c.request == request)
    ).all()
    _record_erasures(
        conn, request, "sealed-result", [(r[0], r[1]) for r in rows], reason=reason, now=now
    )
    conn.execute(delete(results).where(results.c.request == request))
    return len(rows)


def _record_erasures(
    conn: Connection,
    request: str,
    kind: str,
    rows: Sequence[tuple[Any, Any]],
    *,
    reason: str,
    now: int,
) -> None:
    _record_digests(
        conn,
        request,
        kind,
        [(subject, SealedHash(bytes(blob))) for subject, blob in rows],
        reason=reason,
        now=now,
    )


def _record_digests(
    conn: Connection,
    request: str,
    kind: str,
    rows: Sequence[tuple[Any, SealedHash]],
    *,
    reason: str,
    now: int,
) -> None:
    if not rows:
        return
    conn.execute(
        erasures.insert(),
        [
            {
                "request": request,
                "kind": kind,
                "subject": str(subject),
                "sealed": hashed.digest(),
                "size": hashed.size,
                "erased_at": now,
                "reason": reason,
            }
            for subject, hashed in rows
        ],
    )


# --- who sees a request, and what they see --------------------------------------------------


def request_row(conn: Connection, request: str, caller: PartyId) -> Row[Any]:
    """The request's row if ``caller`` may see it; otherwise it does not exist for them."""
    row = conn.execute(select(requests).where(requests.c.request == request)).first()
    if row is None or not _visible(conn, row, caller):
        raise NotFound(f"no request {request}")
    return row


def _visible(conn: Connection, row: Row[Any], caller: PartyId) -> bool:
    if row.requester == caller:
        return True
    r = row.request
    hit = conn.execute(
        select(request_inputs.c.dataset)
        .where(request_inputs.c.request == r, request_inputs.c.owner == caller)
        .union_all(
            select(request_recipients.c.party).where(
                request_recipients.c.request == r, request_recipients.c.party == caller
            ),
            select(jobs.c.request).where(jobs.c.request == r, jobs.c.enclave == caller),
        )
        .limit(1)
    ).first()
    return hit is not None


def request_view(conn: Connection, request: str) -> RequestView:
    row = conn.execute(
        select(requests, statements.c.envelope, statements.c.log_index, statements.c.log_salt)
        .join(statements, statements.c.digest == requests.c.request)
        .where(requests.c.request == request)
    ).one()
    env = Envelope.from_json(bytes(row.envelope))
    req = ComputationRequest.parse_payload(env.payload)
    inputs = conn.execute(
        select(request_inputs)
        .where(request_inputs.c.request == request)
        .order_by(request_inputs.c.position)
    ).all()
    events = conn.execute(
        select(request_history.c.status, request_history.c.at, request_history.c.reason)
        .where(request_history.c.request == request)
        .order_by(request_history.c.id)
    ).all()
    return RequestView(
        request=request,
        envelope=env,
        requester=req.requester,
        computation=req.computation,
        parameters=req.parameters,
        inputs=tuple(
            RequestInput(
                dataset=i.dataset,
                owner=i.owner,
                decision=i.decision,
                mode=i.mode,
                reason=i.reason,
                approval=i.approval,
                sealed=i.sealed_size is not None,
                enclave=i.enclave,
            )
            for i in inputs
        ),
        recipients=req.recipients,
        status=row.status,
        status_reason=row.status_reason,
        precheck=tuple(
            Precheck(
                dataset=p["dataset"],
                allowed=p["allowed"],
                automatic=p["automatic"],
                reasons=tuple(p["reasons"]),
            )
            for p in json.loads(row.precheck)
        ),
        history=tuple(HistoryItem(status=h.status, at=int(h.at), reason=h.reason) for h in events),
        receipt=row.receipt,
        created_at=req.created_at,
        expires_at=req.expires_at,
        log_index=int(row.log_index),
        log_salt=None if row.log_salt is None else bytes(row.log_salt),
    )


@dataclass(frozen=True, slots=True)
class JobParts:
    """The digests of the statements a job is judged on, in request order."""

    approvals: tuple[str, ...]
    attestations: tuple[str, ...]
    policies: tuple[str, ...]
    room: str | None

    def digests(self, request: str) -> list[str]:
        """The request and every part, each once, in that order."""
        room = [self.room] if self.room is not None else []
        return list(
            dict.fromkeys([request, *self.approvals, *self.attestations, *self.policies, *room])
        )


def job_parts(conn: Connection, request: str) -> JobParts:
    rows = conn.execute(
        select(request_inputs.c.dataset, request_inputs.c.approval, datasets.c.policy)
        .join(datasets, datasets.c.dataset == request_inputs.c.dataset)
        .where(request_inputs.c.request == request)
        .order_by(request_inputs.c.position)
    ).all()
    env, _ = statement(conn, request, ComputationRequest.TYPE)
    return JobParts(
        approvals=tuple(str(r.approval) for r in rows if r.approval is not None),
        attestations=tuple(str(r.dataset) for r in rows),
        policies=tuple(dict.fromkeys(str(r.policy) for r in rows if r.policy is not None)),
        room=ComputationRequest.parse_payload(env.payload).room_policy,
    )


# --- the log's latest checkpoint ------------------------------------------------------------


def latest_checkpoint(conn: Connection) -> str:
    note = conn.execute(
        select(checkpoints.c.note).order_by(checkpoints.c.seq.desc()).limit(1)
    ).scalar_one_or_none()
    if note is None:
        raise NotFound("the log has no checkpoint yet")
    return str(note)


def checkpoint_size(note: str) -> int:
    body, _ = split_note(note)
    return Checkpoint.from_body(body).size
