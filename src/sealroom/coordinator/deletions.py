"""Deletions: the enclave's signed account of each job's erasure, and the coordinator's own.

After every job the enclave posts a :class:`~sealroom.statements.Deletion`
(what it held, when it let go); it is stored and logged here (privately: it
names a request and its inputs) beside the request. The coordinator records
its own erasures of sealed blobs (:func:`~sealroom.coordinator.state.erase_sealed_inputs`
when a request ends, :func:`~sealroom.coordinator.state.erase_results` at
retention, run by :meth:`~sealroom.coordinator.state.State.sweep`). A party of
the request reads both with inclusion proofs against one checkpoint; an
auditor matches the ciphertext digests of the two accounts.
"""

from __future__ import annotations

from sqlalchemy import select

from sealroom.coordinator.log import log_on
from sealroom.coordinator.state import (
    State,
    Stored,
    checkpoint_size,
    latest_checkpoint,
    request_row,
)
from sealroom.crypto.keys import PartyId
from sealroom.errors import InvalidInput, NotFound, SignatureInvalid
from sealroom.statements import Deletion, Envelope
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.storage.schema import (
    enclaves,
    erasures,
    job_deletions,
    jobs,
    request_inputs,
    requests,
    statements,
)
from sealroom.wire import (
    DeletionRecorded,
    DeletionsView,
    ErasureView,
    LoggedStatement,
)

__all__ = ["Deletions"]

# A request is run at most this many times (claims), each ending in one Deletion.
_MAX_PER_REQUEST = 64


class Deletions:
    __slots__ = ("_state",)

    def __init__(self, state: State) -> None:
        self._state = state

    def record(
        self, request: str, env: Envelope, *, caller: PartyId, now: int
    ) -> Stored[DeletionRecorded]:
        """Store and log the enclave's Deletion for a job it claimed (once per digest).

        The job is looked up first: only the enclave that claimed it has anything to say."""
        with write_transaction(self._state.engine) as conn:
            claimed = conn.execute(
                select(jobs.c.enclave).where(jobs.c.request == request)
            ).scalar_one_or_none()
            if claimed is None or claimed != caller:
                raise NotFound(f"no job {request} claimed by you")
            deletion = env.open(Deletion).statement
            if env.signer.party_id != caller:
                raise SignatureInvalid("a deletion must be signed by the enclave that ran the job")
            if deletion.request != request:
                raise InvalidInput("the deletion names another request")
            if deletion.erased_at > now + 300:
                raise InvalidInput("the deletion is dated in the future")
            ran = conn.execute(
                select(enclaves.c.party).where(enclaves.c.evidence == deletion.evidence)
            ).scalar_one_or_none()
            if ran != caller:
                raise InvalidInput("the deletion names evidence of another enclave")
            row = conn.execute(
                select(requests.c.status, requests.c.receipt).where(requests.c.request == request)
            ).one()
            if row.status == "running" and deletion.outcome != "abandoned":
                raise InvalidInput(f"the job is still running; a {deletion.outcome} job is not")
            if deletion.receipt is not None and deletion.receipt != row.receipt:
                raise InvalidInput("the deletion names a receipt the request does not have")
            inputs = {
                str(d)
                for (d,) in conn.execute(
                    select(request_inputs.c.dataset).where(request_inputs.c.request == request)
                )
            }
            stray = [i.dataset for i in deletion.inputs if i.dataset not in inputs]
            if stray:
                raise InvalidInput(f"the deletion names {stray[0]}, not an input of the request")
            known = {
                str(d)
                for (d,) in conn.execute(
                    select(job_deletions.c.deletion).where(job_deletions.c.request == request)
                )
            }
            if env.digest not in known and len(known) >= _MAX_PER_REQUEST:
                raise InvalidInput(f"at most {_MAX_PER_REQUEST} deletions per request")
            index, created = self._state.store(conn, env, now=now)
            if env.digest not in known:
                conn.execute(
                    job_deletions.insert().values(
                        deletion=env.digest,
                        request=request,
                        enclave=caller,
                        erased_at=deletion.erased_at,
                    )
                )
        view = DeletionRecorded(deletion=env.digest, request=request, log_index=index)
        return Stored(view, created=created)

    def view(self, request: str, *, caller: PartyId) -> DeletionsView:
        """The request's deletions with proofs in one checkpoint, and the coordinator's
        erasures; for the parties who may see the request (others: not found)."""
        with read_transaction(self._state.engine) as conn:
            request_row(conn, request, caller)
            rows = conn.execute(
                select(statements.c.envelope, statements.c.log_index, statements.c.log_salt)
                .join(job_deletions, job_deletions.c.deletion == statements.c.digest)
                .where(job_deletions.c.request == request)
                .order_by(statements.c.log_index)
            ).all()
            erased = conn.execute(
                select(erasures).where(erasures.c.request == request).order_by(erasures.c.id)
            ).all()
            note = latest_checkpoint(conn)
            size = checkpoint_size(note)
            log = log_on(conn)
            logged = tuple(
                LoggedStatement(
                    envelope=Envelope.from_json(bytes(env)),
                    log_index=int(index),
                    salt=bytes(salt) if salt is not None else None,
                    inclusion=tuple(log.inclusion_proof(int(index), size)),
                )
                for env, index, salt in rows
            )
        return DeletionsView(
            request=request,
            checkpoint=note,
            deletions=logged,
            erasures=tuple(
                ErasureView(
                    kind=e.kind,
                    subject=e.subject,
                    sealed=e.sealed,
                    size=int(e.size),
                    erased_at=int(e.erased_at),
                    reason=e.reason,
                )
                for e in erased
            ),
        )
