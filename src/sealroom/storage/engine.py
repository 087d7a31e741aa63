"""Engines and transactions for the coordinator database (SQLite or PostgreSQL).

One write transaction at a time: on SQLite the write lock is taken at BEGIN
(``BEGIN IMMEDIATE``), on PostgreSQL every write transaction starts by locking
the transparency log's head row. Every coordinator state change appends to the
log, so serializing on the log head costs nothing extra, and it rules out
races such as two approvals of the same input both passing their checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from sealroom.crypto.files import create_private
from sealroom.errors import BackendUnavailable, Conflict, InvalidInput
from sealroom.transparency import sqlstore
from sealroom.transparency.sqlstore import configure_sqlite

__all__ = ["create_engine", "read_transaction", "write_transaction"]

# The option configure_sqlite's BEGIN hook reads to emit BEGIN IMMEDIATE.
WRITE_OPTION = sqlstore.WRITE_OPTION


def create_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    SQLite gets WAL, ``synchronous=FULL``, foreign keys, a busy timeout and an
    explicit BEGIN (IMMEDIATE for writes). The caller owns and disposes it.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InvalidInput(f"not a database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            raise InvalidInput("an in-memory SQLite database is not durable; give a file path")
        if parsed.drivername == "sqlite":
            parsed = parsed.set(drivername="sqlite+pysqlite")
        # The database holds sealed inputs, results and private statements: owner-only.
        create_private(Path(database))
        return configure_sqlite(sa.create_engine(parsed, connect_args={"timeout": 30.0}))
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.get_driver_name() == "psycopg" and find_spec("psycopg") is None:
            raise BackendUnavailable(
                "PostgreSQL needs its driver, which is an optional part: "
                "pip install 'sealroom[postgres]'"
            )
        return sa.create_engine(parsed, pool_pre_ping=True)
    raise InvalidInput(f"the coordinator supports SQLite and PostgreSQL, not {backend}")


@contextmanager
def _translate() -> Iterator[None]:
    try:
        yield
    except IntegrityError as exc:
        raise Conflict(f"the write conflicts with stored data: {exc.orig}") from exc
    except (OperationalError, ProgrammingError) as exc:
        raise BackendUnavailable(f"database: {type(exc.orig).__name__}") from exc


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One serialized write transaction: all of it commits, or none of it."""
    with _translate(), engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="READ COMMITTED")
        with conn.begin():
            if conn.dialect.name == "postgresql":
                row = conn.execute(
                    select(sqlstore.head.c.size).where(sqlstore.head.c.id == 1).with_for_update()
                ).first()
                if row is None:
                    raise BackendUnavailable("the database is not initialised (run migrations)")
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """One consistent read snapshot."""
    with _translate(), engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn
