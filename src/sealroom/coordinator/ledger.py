"""The deployment's privacy-budget ledgers: one hash chain of logged charges per dataset.

Every charge is a :class:`~sealroom.statements.BudgetCharge` signed by the
enclave that ran the request, appended to the transparency log in the same
transaction that stores the request's receipt and sealed results
(:meth:`~sealroom.coordinator.jobs.Jobs.complete` calls :func:`append_charges`).
A charge is appended only if it names its dataset's current head (``prev``
and ``seq``: a compare-and-swap; write transactions are serialized and the
``(dataset, seq)`` key backs it up), and at most once per (request, dataset).
So a release exists if and only if its charges do, and two enclaves that read
the same head cannot both spend it.

:meth:`Ledgers.view` serves an enclave a dataset's whole chain with each
charge's inclusion proof against one signed checkpoint, all read in one
snapshot; the enclave checks the proofs and the checkpoint's consistency with
the last one it trusted before it sums the spend (:mod:`sealroom.enclave.charges`).
The coordinator stays untrusted: what it could still do is described in
docs/decisions.md ("One budget ledger per dataset").
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from sealroom.coordinator.log import log_on
from sealroom.coordinator.state import State, checkpoint_size, latest_checkpoint
from sealroom.crypto.keys import PartyId
from sealroom.errors import (
    AlreadyReleased,
    InvalidInput,
    PolicyDenied,
    SignatureInvalid,
    StaleLedgerHead,
)
from sealroom.statements import BudgetCharge, Envelope, Signed
from sealroom.storage.engine import read_transaction
from sealroom.storage.schema import enclaves, ledger_charges, parties, statements
from sealroom.wire import LedgerCharge, LedgerView

__all__ = ["Ledgers", "append_charges"]


class Ledgers:
    """Reads of the per-dataset ledgers, for enclaves only."""

    __slots__ = ("_state",)

    def __init__(self, state: State) -> None:
        self._state = state

    def view(self, dataset: str, *, caller: PartyId) -> LedgerView:
        """The dataset's charges, oldest first, each with its inclusion proof in one checkpoint
        and the salt of its log commitment (charges are private statements)."""
        with read_transaction(self._state.engine) as conn:
            kind = conn.execute(
                select(parties.c.kind).where(parties.c.party == caller)
            ).scalar_one_or_none()
            if kind != "enclave":
                # Charges name requesters and requests: only the enclaves that sum them read them.
                raise PolicyDenied("only a registered enclave may read a budget ledger")
            rows = conn.execute(
                select(statements.c.envelope, statements.c.log_index, statements.c.log_salt)
                .join(ledger_charges, ledger_charges.c.charge == statements.c.digest)
                .where(ledger_charges.c.dataset == dataset)
                .order_by(ledger_charges.c.seq)
            ).all()
            note = latest_checkpoint(conn)
            size = checkpoint_size(note)
            log = log_on(conn)
            charges = tuple(
                LedgerCharge(
                    envelope=Envelope.from_json(bytes(env)),
                    log_index=int(index),
                    salt=bytes(salt) if salt is not None else None,
                    inclusion=tuple(log.inclusion_proof(int(index), size)),
                )
                for env, index, salt in rows
            )
        return LedgerView(dataset=dataset, checkpoint=note, charges=charges)


def append_charges(
    state: State,
    conn: Connection,
    envelopes: Sequence[Envelope],
    *,
    request: str,
    inputs: Sequence[str],
    caller: PartyId,
    now: int,
) -> tuple[Signed[BudgetCharge], ...]:
    """Append one charge per input to each dataset's chain, in ``conn``'s transaction.

    Raises :class:`StaleLedgerHead` if a charge does not name its dataset's
    current head (the enclave reads the ledger again and retries), and
    :class:`AlreadyReleased` if the request is already charged on a dataset.
    """
    opened: dict[str, Signed[BudgetCharge]] = {}
    for env in envelopes:
        charge = env.open(BudgetCharge)
        c = charge.statement
        if c.enclave != caller:
            raise SignatureInvalid("a budget charge must be signed by the enclave that ran the job")
        if c.request != request:
            raise InvalidInput(f"budget charge {charge.digest} is for another request")
        if c.dataset in opened:
            raise InvalidInput(f"two budget charges for input {c.dataset}")
        if c.dataset not in inputs:
            raise InvalidInput(f"budget charge {charge.digest} is not for an input of the request")
        registered = conn.execute(
            select(enclaves.c.party).where(enclaves.c.evidence == c.evidence)
        ).scalar_one_or_none()
        if registered != caller:
            raise InvalidInput(f"budget charge {charge.digest} names evidence of another enclave")
        opened[c.dataset] = charge
    missing = [d for d in inputs if d not in opened]
    if missing:
        raise InvalidInput(f"no budget charge for input {missing[0]}: every release is charged")
    for dataset in inputs:
        charge = opened[dataset]
        c = charge.statement
        done = conn.execute(
            select(ledger_charges.c.charge).where(
                ledger_charges.c.request == request, ledger_charges.c.dataset == dataset
            )
        ).scalar_one_or_none()
        if done is not None:
            raise AlreadyReleased(f"request {request} is already charged on {dataset} ({done})")
        head = conn.execute(
            select(ledger_charges.c.seq, ledger_charges.c.charge)
            .where(ledger_charges.c.dataset == dataset)
            .order_by(ledger_charges.c.seq.desc())
            .limit(1)
        ).first()
        want_seq, want_prev = (0, None) if head is None else (int(head.seq) + 1, str(head.charge))
        if (c.seq, c.prev) != (want_seq, want_prev):
            raise StaleLedgerHead(
                f"charge {charge.digest} extends {c.prev} at {c.seq}; the head of {dataset} "
                f"is {want_prev} (next position {want_seq})"
            )
        state.store(conn, charge.envelope, now=now)
        conn.execute(
            ledger_charges.insert().values(
                dataset=dataset, seq=c.seq, request=request, charge=charge.digest, charged_at=now
            )
        )
    return tuple(opened[d] for d in inputs)
