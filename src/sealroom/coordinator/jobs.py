"""Enclaves and their jobs: registration, claims with a lease, sealed inputs, completion.

An enclave registers by its evidence (signed by the enclave key it binds) and
becomes a party of kind ``enclave``. It claims the oldest approved request
whose inputs are all sealed to its keys (the workers of one deployment share
them, so any of them may claim), and renews its lease while it runs; a lease
that runs out puts the request back in the queue for another worker, up to
:data:`~sealroom.coordinator.state.MAX_JOB_ATTEMPTS` claims
(:meth:`~sealroom.coordinator.state.State.sweep`). Completion stores the
receipt, the sealed results and the request's budget charges in one
transaction (:func:`~sealroom.coordinator.ledger.append_charges`): a release
exists if and only if its charges do. The stored results are wrapped under release
keys (commit-then-reveal, :mod:`sealroom.enclave.release`): the enclave posts the
keys, sealed to the recipients, only after it proved the charges are logged, so
a coordinator that keeps a result but drops its charges holds nothing it can open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, exists, or_, select, update

from sealroom.coordinator.admission import AdmissionPolicy
from sealroom.coordinator.ledger import append_charges
from sealroom.coordinator.rooms import room_materials
from sealroom.coordinator.state import (
    DEFAULT_LEASE_SECONDS,
    State,
    Stored,
    job_parts,
    put_party,
    request_view,
    rules,
    statement,
)
from sealroom.crypto.keys import PartyId
from sealroom.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    PolicyDenied,
    SignatureInvalid,
)
from sealroom.statements import ComputationRequest, EnclaveEvidence, Envelope, Receipt
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.storage.schema import (
    datasets,
    enclaves,
    input_uploads,
    jobs,
    parties,
    request_blobs,
    request_inputs,
    request_recipients,
    requests,
    results,
    statements,
)
from sealroom.wire import (
    EnclaveList,
    EnclaveRegistered,
    EnclaveView,
    JobInput,
    JobView,
    LeaseView,
    PendingRelease,
    PendingReleases,
    ReleaseKey,
    RequestView,
    SealedOutput,
)

__all__ = ["CompletionHook", "Jobs", "check_admitted", "running_job"]

CompletionHook = Callable[[str, int], None]
"""Called with (request, now) after a request completed and its receipt was stored."""

_log = logging.getLogger("sealroom.coordinator")


# At most this many registrations are looked at when listing admitted enclaves (newest first).
_MAX_LISTED = 100


class Jobs:
    __slots__ = ("_admission", "_lease", "_on_complete", "_state")

    def __init__(
        self,
        state: State,
        *,
        admission: AdmissionPolicy,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        on_complete: Sequence[CompletionHook] = (),
    ) -> None:
        self._state = state
        self._admission = admission
        self._lease = lease_seconds
        # Called after a completion committed (e.g. the marketplace settles a paid use); a
        # hook that fails is logged and leaves the completion as it is.
        self._on_complete = tuple(on_complete)

    # --- enclaves ---------------------------------------------------------------------------

    def register_enclave(
        self, env: Envelope, *, caller: PartyId, now: int
    ) -> Stored[EnclaveRegistered]:
        ev = env.open(EnclaveEvidence).statement
        if env.signer.party_id != caller:
            raise AuthenticationFailed("the registration must be signed by the enclave key")
        self._admission.admit(ev, now=now)  # before anything is stored: refused leaves no trace
        with write_transaction(self._state.engine) as conn:
            put_party(conn, env.signer, name=f"enclave ({ev.tee})", kind="enclave", now=now)
            index, created = self._state.store(conn, env, now=now)
            if created:
                conn.execute(
                    enclaves.insert().values(
                        evidence=env.digest,
                        party=caller,
                        tee=ev.tee,
                        simulated=ev.simulated,
                        registered_at=now,
                    )
                )
        view = EnclaveRegistered(
            evidence=env.digest, party=caller, tee=ev.tee, simulated=ev.simulated, log_index=index
        )
        return Stored(view, created=created)

    def admitted_enclaves(self, *, now: int) -> EnclaveList:
        """The registered enclaves whose evidence the admission policy accepts now, newest first.

        There is no "current" enclave: an owner picks one that satisfies its own pin.
        """
        with read_transaction(self._state.engine) as conn:
            rows = conn.execute(
                select(enclaves, statements.c.envelope, statements.c.log_index)
                .join(statements, statements.c.digest == enclaves.c.evidence)
                .order_by(enclaves.c.seq.desc())
                .limit(_MAX_LISTED)
            ).all()
        listed = []
        for row in rows:
            env = Envelope.from_json(bytes(row.envelope))
            ev = env.open(EnclaveEvidence).statement
            try:
                self._admission.admit(ev, now=now)
            except PolicyDenied:
                continue  # stale, or registered under an earlier policy
            listed.append(
                EnclaveView(
                    evidence=row.evidence,
                    envelope=env,
                    tee=row.tee,
                    simulated=bool(row.simulated),
                    party=row.party,
                    log_index=int(row.log_index),
                    created_at=ev.created_at,
                )
            )
        return EnclaveList(enclaves=tuple(listed), admission=self._admission.describe())

    # --- jobs -------------------------------------------------------------------------------

    def claim(self, *, caller: PartyId, now: int) -> JobView | None:
        """The oldest approved request sealed to this enclave, now running; None if none is."""
        self._state.sweep(now=now)
        with write_transaction(self._state.engine) as conn:
            kind = conn.execute(
                select(parties.c.kind).where(parties.c.party == caller)
            ).scalar_one_or_none()
            if kind != "enclave":
                raise PolicyDenied("only a registered enclave may take jobs")
            mine = select(enclaves.c.evidence).where(enclaves.c.party == caller)
            not_mine = exists().where(
                request_inputs.c.request == requests.c.request,
                or_(request_inputs.c.enclave.is_(None), request_inputs.c.enclave.not_in(mine)),
            )
            row = conn.execute(
                select(requests.c.request)
                .where(requests.c.status == "approved", ~not_mine)
                .order_by(requests.c.seq)
                .limit(1)
            ).first()
            if row is None:
                return None
            request = str(row[0])
            evidence = conn.execute(
                select(request_inputs.c.enclave).where(request_inputs.c.request == request).limit(1)
            ).scalar_one()
            lease_until = now + self._lease
            before = conn.execute(
                select(jobs.c.attempts).where(jobs.c.request == request)
            ).scalar_one_or_none()
            conn.execute(delete(jobs).where(jobs.c.request == request))
            conn.execute(
                jobs.insert().values(
                    request=request,
                    evidence=evidence,
                    enclave=caller,
                    claimed_at=now,
                    lease_until=lease_until,
                    attempts=(before or 0) + 1,
                )
            )
            self._state.transition(
                conn, request, ("approved",), "running", "claimed by the enclave", now
            )
            parts = job_parts(conn, request)
            envs = {
                str(d): Envelope.from_json(bytes(e))
                for d, e in conn.execute(
                    select(statements.c.digest, statements.c.envelope).where(
                        statements.c.digest.in_(parts.digests(request))
                    )
                )
            }
            sizes = conn.execute(
                select(request_inputs.c.dataset, request_inputs.c.sealed_size)
                .where(request_inputs.c.request == request)
                .order_by(request_inputs.c.position)
            ).all()
            chunked = {
                str(u.dataset): (int(u.parts), bytes(u.leaves))
                for u in conn.execute(
                    select(
                        input_uploads.c.dataset, input_uploads.c.parts, input_uploads.c.leaves
                    ).where(
                        input_uploads.c.request == request,
                        input_uploads.c.completed_at.is_not(None),
                    )
                )
            }
            room = room_materials(conn, parts.room, request)
        return JobView(
            request=envs[request],
            approvals=tuple(envs[d] for d in parts.approvals),
            attestations=tuple(envs[d] for d in parts.attestations),
            policies=tuple(envs[d] for d in parts.policies),
            room_policy=envs[parts.room] if parts.room is not None else None,
            inputs=tuple(
                JobInput(dataset=d, size=int(s), parts=chunked[d][0], leaves=chunked[d][1])
                if d in chunked
                else JobInput(dataset=d, size=int(s))
                for d, s in sizes
            ),
            evidence=evidence,
            lease_until=lease_until,
            room=room.room,
            consents=room.consents,
            run_approvals=room.run_approvals,
            org_members=room.org_members,
        )

    def job_input(self, request: str, dataset: str, *, caller: PartyId, now: int) -> bytes:
        self._state.sweep(now=now)
        with read_transaction(self._state.engine) as conn:
            running_job(conn, request, caller)
            blob = conn.execute(
                select(request_blobs.c.sealed).where(
                    request_blobs.c.request == request, request_blobs.c.dataset == dataset
                )
            ).scalar_one_or_none()
        if blob is None:
            raise NotFound(f"no sealed input {dataset} in job {request}")
        return bytes(blob)

    def renew(self, request: str, *, caller: PartyId, now: int) -> LeaseView:
        """Extend the caller's lease on a running job (the worker calls this while it runs)."""
        self._state.sweep(now=now)
        with write_transaction(self._state.engine) as conn:
            job = running_job(conn, request, caller)
            if int(job.lease_until) <= now:
                raise Conflict("the lease ran out; the job goes back to the queue")
            lease_until = now + self._lease
            conn.execute(
                update(jobs).where(jobs.c.request == request).values(lease_until=lease_until)
            )
        return LeaseView(request=request, lease_until=lease_until)

    def complete(
        self,
        request: str,
        receipt_env: Envelope,
        outputs: Sequence[SealedOutput],
        *,
        caller: PartyId,
        now: int,
        charges: Sequence[Envelope] = (),
    ) -> RequestView:
        """Store the receipt, one sealed output per recipient and the request's budget charges
        (one per input, each on its dataset's head) in one transaction; the request completes."""
        sealed: dict[str, bytes] = {}
        for o in outputs:
            if o.recipient in sealed:
                raise InvalidInput(f"two outputs for recipient {o.recipient}")
            sealed[o.recipient] = o.sealed
        if not sealed:
            raise InvalidInput("outputs must be a non-empty list")
        self._state.sweep(now=now)
        view = self._complete(request, receipt_env, sealed, charges, caller=caller, now=now)
        for hook in self._on_complete:
            try:
                hook(request, now)
            except Exception:
                _log.exception("a completion hook failed for request %s", request)
        return view

    def _complete(
        self,
        request: str,
        receipt_env: Envelope,
        sealed: dict[str, bytes],
        charges: Sequence[Envelope],
        *,
        caller: PartyId,
        now: int,
    ) -> RequestView:
        with write_transaction(self._state.engine) as conn:
            running_job(conn, request, caller)
            receipt = receipt_env.open(Receipt).statement
            if receipt_env.signer.party_id != caller:
                raise SignatureInvalid("the receipt must be signed by the enclave that ran the job")
            if receipt.request != request:
                raise InvalidInput("the receipt names another request")
            # Any evidence of the claiming enclave's keys: the workers of a deployment share
            # the keys the inputs are sealed to, each with its own evidence.
            ran = conn.execute(
                select(enclaves.c.party).where(enclaves.c.evidence == receipt.evidence)
            ).scalar_one_or_none()
            if ran != caller:
                raise InvalidInput("the receipt names evidence of another enclave")
            recipients = {
                str(p)
                for (p,) in conn.execute(
                    select(request_recipients.c.party).where(
                        request_recipients.c.request == request
                    )
                )
            }
            if set(sealed) != recipients:
                raise InvalidInput("there must be exactly one output per recipient")
            if {o.recipient for o in receipt.outputs} != recipients or len(receipt.outputs) != len(
                recipients
            ):
                raise InvalidInput("the receipt must commit to one output per recipient")
            inputs = [
                str(d)
                for (d,) in conn.execute(
                    select(request_inputs.c.dataset)
                    .where(request_inputs.c.request == request)
                    .order_by(request_inputs.c.position)
                )
            ]
            charged = append_charges(
                self._state,
                conn,
                charges,
                request=request,
                inputs=inputs,
                caller=caller,
                now=now,
            )
            # The ledger and the receipt must tell the same story of what was spent.
            decided = {d.dataset: (d.epsilon, d.delta) for d in receipt.decisions}
            requester = ComputationRequest.parse_payload(
                statement(conn, request, ComputationRequest.TYPE)[0].payload
            ).requester
            for c in charged:
                ch = c.statement
                if ch.requester != requester:
                    raise InvalidInput(f"budget charge {c.digest} names another requester")
                if decided.get(ch.dataset) != (ch.epsilon, ch.delta):
                    raise InvalidInput(
                        f"budget charge {c.digest} differs from the receipt's decision on "
                        f"{ch.dataset}"
                    )
            self._state.store(conn, receipt_env, now=now)
            conn.execute(
                results.insert(),
                [{"request": request, "recipient": r, "sealed": s} for r, s in sealed.items()],
            )
            conn.execute(
                update(requests)
                .where(requests.c.request == request)
                .values(receipt=receipt_env.digest)
            )
            self._state.transition(
                conn, request, ("running",), "completed", "the enclave released the result", now
            )
            retention = _retention(conn, request)
            if retention is not None:
                conn.execute(
                    update(requests)
                    .where(requests.c.request == request)
                    .values(retention_seconds=retention, results_until=now + retention)
                )
            return request_view(conn, request)

    def release(
        self, request: str, keys: Sequence[ReleaseKey], *, caller: PartyId, now: int
    ) -> RequestView:
        """Store the release keys of the caller's completed job (one per recipient). Idempotent:
        a key already stored is kept (a second worker's release of the same job is not an
        error)."""
        with write_transaction(self._state.engine) as conn:
            row = conn.execute(
                select(requests.c.status)
                .join(jobs, jobs.c.request == requests.c.request)
                .where(requests.c.request == request, jobs.c.enclave == caller)
            ).first()
            if row is None:
                raise NotFound(f"no job {request} run by you")
            if row.status != "completed":
                raise Conflict(f"the request is {row.status}: only a completed job's keys release")
            sealed: dict[str, bytes] = {}
            for k in keys:
                if k.recipient in sealed:
                    raise InvalidInput(f"two release keys for recipient {k.recipient}")
                sealed[k.recipient] = k.sealed_key
            stored = {
                str(r.recipient): r.release_key
                for r in conn.execute(
                    select(results.c.recipient, results.c.release_key).where(
                        results.c.request == request
                    )
                )
            }
            if not stored:
                raise NotFound("the job's results were deleted (retention)")
            if set(sealed) != set(stored):
                raise InvalidInput("there must be exactly one release key per recipient")
            for recipient, key in sealed.items():
                if stored[recipient] is None:
                    conn.execute(
                        update(results)
                        .where(results.c.request == request, results.c.recipient == recipient)
                        .values(release_key=key, released_at=now)
                    )
            return request_view(conn, request)

    def pending_releases(self, *, caller: PartyId) -> PendingReleases:
        """The caller's completed jobs with a release key still missing (a worker that stopped
        between completing and releasing leaves these to the next)."""
        with read_transaction(self._state.engine) as conn:
            rows = conn.execute(
                select(requests.c.request, requests.c.receipt)
                .join(jobs, jobs.c.request == requests.c.request)
                .where(
                    jobs.c.enclave == caller,
                    requests.c.status == "completed",
                    requests.c.receipt.is_not(None),
                    exists().where(
                        results.c.request == requests.c.request, results.c.release_key.is_(None)
                    ),
                )
                .order_by(requests.c.request)
                .limit(100)
            ).all()
            return PendingReleases(
                releases=tuple(
                    PendingRelease(
                        request=str(r.request),
                        receipt=statement(conn, str(r.receipt), Receipt.TYPE)[0],
                    )
                    for r in rows
                )
            )

    def fail(self, request: str, reason: str, *, caller: PartyId, now: int) -> RequestView:
        self._state.sweep(now=now)
        with write_transaction(self._state.engine) as conn:
            running_job(conn, request, caller)
            self._state.transition(
                conn,
                request,
                ("running",),
                "failed",
                f"the enclave failed: {reason.strip()}",
                now,
            )
            return request_view(conn, request)


def check_admitted(
    conn: Connection, evidence: str, admission: AdmissionPolicy, *, now: int
) -> None:
    """Raise unless ``evidence`` is a registered enclave that ``admission`` accepts now."""
    known = conn.execute(select(enclaves.c.evidence).where(enclaves.c.evidence == evidence)).first()
    if known is None:
        raise InvalidInput(f"no registered enclave evidence {evidence}")
    env, _ = statement(conn, evidence, EnclaveEvidence.TYPE)
    admission.admit(env.open(EnclaveEvidence).statement, now=now)


def running_job(conn: Connection, request: str, caller: PartyId) -> Row[Any]:
    """The caller's job on ``request``, which must still be running."""
    job = conn.execute(
        select(jobs).where(jobs.c.request == request, jobs.c.enclave == caller)
    ).first()
    if job is None:
        raise NotFound(f"no job {request} claimed by you")
    status = conn.execute(
        select(requests.c.status).where(requests.c.request == request)
    ).scalar_one()
    if status != "running":
        raise Conflict(f"the request is {status}, not running")
    return job


def _retention(conn: Connection, request: str) -> int | None:
    """The smallest ``retention_seconds`` of the inputs' policies and the room's (strictest)."""
    named = [
        str(p)
        for (p,) in conn.execute(
            select(datasets.c.policy)
            .join(request_inputs, request_inputs.c.dataset == datasets.c.dataset)
            .where(request_inputs.c.request == request, datasets.c.policy.is_not(None))
        )
    ]
    env, _ = statement(conn, request, ComputationRequest.TYPE)
    room = ComputationRequest.parse_payload(env.payload).room_policy
    limits = [
        r.retention_seconds
        for p in dict.fromkeys([*named, *([room] if room else [])])
        if (r := rules(conn, p)) is not None and r.retention_seconds is not None
    ]
    return min(limits) if limits else None
