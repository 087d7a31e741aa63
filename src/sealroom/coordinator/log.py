"""The coordinator's transparency log: same database, same transaction as the state it records.

A statement and the state derived from it commit together or not at all, so
the log never holds a statement the coordinator forgot, nor the other way
round. The log key lives in the coordinator's keystore, not here
(:mod:`sealroom.coordinator.keys`). :class:`Log` serves the log's public reads
(key, checkpoint, entries, proofs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, select

from sealroom.coordinator.witnessing import Witnessing
from sealroom.crypto.merkle import leaf_hash
from sealroom.errors import InvalidInput, NotFound, SealroomError
from sealroom.statements import Envelope, is_public
from sealroom.storage.engine import read_transaction, write_transaction
from sealroom.transparency.checkpoint import NoteSigner
from sealroom.transparency.entries import committed_entry, parse_committed_entry
from sealroom.transparency.log import LogReader, LogWriter, TransparencyLog
from sealroom.transparency.sqlstore import SqlLogStore, SqlLogTxn, checkpoints
from sealroom.wire import ConsistencyProofView, InclusionProofView, LogEntryView, LogKey

__all__ = [
    "BoundLogStore",
    "Log",
    "append_statement",
    "log_on",
    "reader_log",
]


class BoundLogStore:
    """A :class:`LogStore` that runs inside the caller's open transaction."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @contextmanager
    def reader(self) -> Iterator[LogReader]:
        yield SqlLogTxn(self._conn)

    @contextmanager
    def writer(self) -> Iterator[LogWriter]:
        txn = SqlLogTxn(self._conn)
        txn.lock()
        yield txn


def log_on(conn: Connection) -> TransparencyLog:
    return TransparencyLog(BoundLogStore(conn))


def reader_log(engine: Engine) -> TransparencyLog:
    """A log that reads in its own transactions (proofs for the API)."""
    return TransparencyLog(SqlLogStore(engine))


def append_statement(
    conn: Connection, envelope: Envelope, signer: NoteSigner, *, salt: bytes | None = None
) -> tuple[int, str]:
    """Append the envelope's canonical JSON (or, with ``salt``, its salted commitment) and sign
    a new checkpoint; return (index, checkpoint)."""
    log = log_on(conn)
    index = log.append(committed_entry(envelope.to_json(), salt))
    return index, log.checkpoint(signer)


class Log:
    """The log's public reads; proofs are computed in their own read transactions."""

    __slots__ = ("_engine", "_signer", "_witnessing")

    def __init__(
        self, engine: Engine, signer: NoteSigner, witnessing: Witnessing | None = None
    ) -> None:
        self._engine = engine
        self._signer = signer
        self._witnessing = witnessing

    def key(self) -> LogKey:
        return LogKey(verifier_key=self._signer.verifier.vkey, origin=self._signer.name)

    def checkpoint(self) -> str:
        """The latest signed checkpoint (one is signed for the empty log on first request),
        with the cosignatures of the configured witnesses."""
        note = reader_log(self._engine).latest_checkpoint()
        if note is None:
            with write_transaction(self._engine) as conn:
                note = log_on(conn).checkpoint(self._signer)
        if self._witnessing is not None:
            note = self._witnessing.latest() or note
        return note

    def checkpoint_at(self, size: int) -> str:
        """The first checkpoint the log signed at tree size ``size`` (what a monitor that saw
        the log then holds): the older end of a consistency proof shown to the public."""
        with read_transaction(self._engine) as conn:
            note = conn.execute(
                select(checkpoints.c.note)
                .where(checkpoints.c.size == size)
                .order_by(checkpoints.c.seq)
                .limit(1)
            ).scalar_one_or_none()
        if note is None:
            raise NotFound(f"the log signed no checkpoint at size {size}")
        return str(note)

    def entry(self, index: int) -> LogEntryView:
        """Leaf ``index`` as the public may see it: a public statement, or only the commitment.

        A private statement logged in clear before commitments existed is withheld (only its
        leaf hash is served): the log cannot forget it, but the API need not repeat it.
        """
        log = reader_log(self._engine)
        if index < 0 or index >= log.size():
            raise NotFound(f"no log entry {index}")
        raw = log.entry(index)
        hashed = leaf_hash(raw)
        committed = parse_committed_entry(raw)
        if committed is not None:
            return LogEntryView(index=index, leaf_hash=hashed, commitment=committed.commitment)
        try:
            env = Envelope.from_dict(json.loads(raw))
        except (ValueError, SealroomError):
            env = None  # not a statement: nothing to show but its hash
        if env is None or not is_public(env.type):
            return LogEntryView(index=index, leaf_hash=hashed)
        return LogEntryView(index=index, leaf_hash=hashed, entry=env)

    def inclusion(self, index: int, size: int) -> InclusionProofView:
        log = reader_log(self._engine)
        if not 0 <= index < size:
            raise InvalidInput("index must be below size")
        proof = log.inclusion_proof(index, size)
        return InclusionProofView(index=index, size=size, proof=tuple(proof))

    def consistency(self, first: int, second: int) -> ConsistencyProofView:
        log = reader_log(self._engine)
        if not 0 <= first <= second:
            raise InvalidInput("first must be at most second")
        proof = log.consistency_proof(first, second)
        return ConsistencyProofView(first=first, second=second, proof=tuple(proof))
