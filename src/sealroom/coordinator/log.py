"""The coordinator's transparency log: same database, same transaction as the state it records.

A statement and the state derived from it commit together or not at all, so
the log never holds a statement the coordinator forgot, nor the other way
round. The log key's seed lives in the database (``settings``), so the key,
and with it every checkpoint client have seen, survives restarts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, select

from sealroom.errors import Conflict, InvalidInput
from sealroom.statements import Envelope
from sealroom.storage.engine import write_transaction
from sealroom.storage.schema import settings
from sealroom.transparency.checkpoint import NoteSigner
from sealroom.transparency.log import LogReader, LogWriter, TransparencyLog
from sealroom.transparency.sqlstore import SqlLogStore, SqlLogTxn

__all__ = ["BoundLogStore", "append_statement", "load_log_signer", "log_on", "reader_log"]

_SEED = "log_seed"
_ORIGIN = "log_origin"


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


def append_statement(conn: Connection, envelope: Envelope, signer: NoteSigner) -> tuple[int, str]:
    """Append the envelope's canonical JSON and sign a new checkpoint; return (index, checkpoint)."""
    log = log_on(conn)
    index = log.append(envelope.to_json())
    return index, log.checkpoint(signer)


def load_log_signer(engine: Engine, origin: str) -> NoteSigner:
    """The log's note key, created once; refuses to reuse a database under another origin."""
    if not origin or any(c.isspace() for c in origin) or "+" in origin:
        raise InvalidInput("log origin must be non-empty, without spaces or '+'")
    with write_transaction(engine) as conn:
        rows = dict(
            conn.execute(
                select(settings.c.name, settings.c.value).where(
                    settings.c.name.in_([_SEED, _ORIGIN])
                )
            ).all()
        )
        if _SEED not in rows:
            seed = os.urandom(32)
            conn.execute(
                settings.insert(),
                [{"name": _SEED, "value": seed}, {"name": _ORIGIN, "value": origin.encode()}],
            )
        else:
            seed = bytes(rows[_SEED])
            stored = bytes(rows.get(_ORIGIN, b"")).decode()
            if stored != origin:
                raise Conflict(
                    f"this database's log has origin {stored!r}, not {origin!r}; "
                    "a log cannot change its origin"
                )
    return NoteSigner.from_seed(origin, seed)
