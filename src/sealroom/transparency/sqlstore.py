"""A durable :class:`~sealroom.transparency.log.LogStore` on SQLAlchemy 2 (SQLite, PostgreSQL).

Durability comes from the database: an append is one transaction, so a crash (even SIGKILL)
leaves either all of it or none of it. Appends are serialized so two writers never compute
the tree from the same old frontier:

* PostgreSQL: every write transaction runs at READ COMMITTED and starts with
  ``SELECT ... FROM tlog_head FOR UPDATE``; the row lock queues writers, and the next one
  sees the frontier the previous one committed. Reads run in a REPEATABLE READ snapshot.
* SQLite: ``FOR UPDATE`` does not exist, so write transactions open with
  ``BEGIN IMMEDIATE`` (the database write lock, taken before the first read). That needs
  control of BEGIN, which :func:`configure_sqlite` installs on the caller's engine, together
  with WAL, ``synchronous=FULL``, foreign keys and a busy timeout. The store refuses an
  SQLite engine that was not configured, rather than risk a deferred transaction.

Primary keys on leaf and node indices back this up: a writer that somehow raced would fail
with :class:`~sealroom.errors.Conflict` instead of corrupting the tree. The SQL is portable
(no dialect-specific DDL except SQLite ``WITHOUT ROWID`` and an INTEGER rowid alias).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.sql.expression import Executable

from sealroom.crypto.files import create_private
from sealroom.errors import BackendUnavailable, Conflict, InvalidInput, ProofInvalid
from sealroom.transparency.log import LogReader, LogWriter
from sealroom.transparency.proof import NodeId

__all__ = [
    "WRITE_OPTION",
    "SqlLogStore",
    "SqlLogTxn",
    "configure_sqlite",
    "metadata",
    "sqlite_engine",
]

metadata = MetaData()

# SQLite only treats "INTEGER PRIMARY KEY" as the rowid; BIGINT elsewhere for 2**63 indices.
_Index = BigInteger().with_variant(Integer(), "sqlite")

head = Table(
    "tlog_head",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="tlog_head_single_row"),
    CheckConstraint("size >= 0", name="tlog_head_size"),
)

leaves = Table(
    "tlog_leaves",
    metadata,
    Column("idx", _Index, primary_key=True, autoincrement=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("entry", LargeBinary, nullable=False),
    CheckConstraint("idx >= 0", name="tlog_leaves_idx"),
    CheckConstraint("length(leaf_hash) = 32", name="tlog_leaves_hash_len"),
)

nodes = Table(
    "tlog_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    CheckConstraint("level >= 1 AND level < 64", name="tlog_nodes_level"),
    CheckConstraint("idx >= 0", name="tlog_nodes_idx"),
    CheckConstraint("length(hash) = 32", name="tlog_nodes_hash_len"),
    sqlite_with_rowid=False,
)

checkpoints = Table(
    "tlog_checkpoints",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("size", BigInteger, nullable=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    CheckConstraint("size >= 0", name="tlog_checkpoints_size"),
)

WRITE_OPTION = "sealroom_tlog_write"
"""Execution option marking a connection whose transaction writes (SQLite: BEGIN IMMEDIATE)."""


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Take BEGIN away from pysqlite (it defers it to the first write, which is too late to
    # serialize) and emit it ourselves in _sqlite_on_begin.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _is_configured(engine: Engine) -> bool:
    return event.contains(engine, "begin", _sqlite_on_begin)


def configure_sqlite(engine: Engine) -> Engine:
    """Make an SQLite engine safe for the log: WAL, synchronous=FULL, foreign keys, a 30 s busy
    timeout, and explicit BEGIN (IMMEDIATE for writes). Idempotent; returns the engine."""
    if engine.dialect.name != "sqlite":
        raise InvalidInput(f"configure_sqlite needs an SQLite engine, got {engine.dialect.name}")
    if not _is_configured(engine):
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        engine.dispose()  # pooled connections opened before now lack the pragmas
    return engine


def sqlite_engine(path: str | os.PathLike[str]) -> Engine:
    """A configured engine on an SQLite file, created 0600 (the caller owns and disposes it)."""
    create_private(Path(path))
    url = URL.create("sqlite+pysqlite", database=os.fspath(path))
    return configure_sqlite(create_engine(url, connect_args={"timeout": 30.0}))


@functools.lru_cache(maxsize=256)
def _select_nodes(count: int) -> Executable:
    """Nodes by (level, idx) pairs, built once per pair count (proofs have < 130 nodes).

    An OR of pairs, not a row-value IN: SQLite plans the IN as a full table scan, the OR as
    one primary-key search per pair (PostgreSQL: a bitmap OR over the primary key). Reusing
    the statement object spares SQLAlchemy rebuilding the expression on every proof.
    """
    match = or_(
        *(
            and_(nodes.c.level == bindparam(f"l{k}"), nodes.c.idx == bindparam(f"i{k}"))
            for k in range(count)
        )
    )
    return select(nodes.c.level, nodes.c.idx, nodes.c.hash).where(match)


class SqlLogStore:
    """Log storage in four tables (``tlog_head``, ``tlog_leaves``, ``tlog_nodes``,
    ``tlog_checkpoints``) on an engine the caller owns."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        name = engine.dialect.name
        if name == "sqlite" and not _is_configured(engine):
            raise InvalidInput(
                "SQLite engine is not configured for the log: call configure_sqlite(engine)"
            )
        if name not in ("sqlite", "postgresql"):
            raise InvalidInput(f"the log supports SQLite and PostgreSQL, not {name}")
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine

    def create_schema(self) -> None:
        """Create the tables if missing and the single head row (size 0). Idempotent."""
        try:
            metadata.create_all(self._engine, checkfirst=True)
            with self._transaction(write=True) as conn:
                exists = conn.execute(select(head.c.id).where(head.c.id == 1)).first()
                if exists is None:
                    conn.execute(head.insert().values(id=1, size=0))
        except (OperationalError, ProgrammingError) as exc:
            raise BackendUnavailable(f"log database: {exc.orig}") from exc

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE_OPTION: True})
                if conn.dialect.name == "postgresql":
                    # Writers: READ COMMITTED, so after the head-row lock the next writer sees
                    # the frontier the previous one committed. Readers: one snapshot, so an
                    # audit never sees half of a concurrent append (read-only REPEATABLE READ
                    # transactions never fail to serialize).
                    level = "READ COMMITTED" if write else "REPEATABLE READ"
                    conn.execution_options(isolation_level=level)
                with conn.begin():
                    yield conn
        except IntegrityError as exc:
            raise Conflict(f"concurrent or duplicate write to the log: {exc.orig}") from exc
        except (OperationalError, ProgrammingError) as exc:
            # Unreachable, locked, or a schema this code does not know (missing migration).
            raise BackendUnavailable(f"log database: {exc.orig}") from exc

    @contextmanager
    def reader(self) -> Iterator[LogReader]:
        with self._transaction(write=False) as conn:
            yield SqlLogTxn(conn)

    @contextmanager
    def writer(self) -> Iterator[LogWriter]:
        with self._transaction(write=True) as conn:
            txn = SqlLogTxn(conn)
            txn.lock()
            yield txn


class SqlLogTxn:
    """Log reads and appends inside a caller's transaction (the coordinator logs with its state)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def lock(self) -> None:
        row = self._conn.execute(
            select(head.c.size).where(head.c.id == 1).with_for_update()
        ).first()
        if row is None:
            raise BackendUnavailable("the log tables are not initialised (create_schema)")

    def size(self) -> int:
        row = self._conn.execute(select(head.c.size).where(head.c.id == 1)).first()
        if row is None:
            raise BackendUnavailable("the log tables are not initialised (create_schema)")
        return int(row[0])

    def read_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        found: dict[NodeId, bytes] = {}
        leaf_ids = [n.index for n in ids if n.level == 0]
        if leaf_ids:
            leaf_rows = self._conn.execute(
                select(leaves.c.idx, leaves.c.leaf_hash).where(leaves.c.idx.in_(leaf_ids))
            )
            found.update((NodeId(0, int(i)), bytes(h)) for i, h in leaf_rows)
        inner = [(n.level, n.index) for n in ids if n.level > 0]
        if inner:
            params: dict[str, int] = {}
            for k, (level, index) in enumerate(inner):
                params[f"l{k}"] = level
                params[f"i{k}"] = index
            node_rows = self._conn.execute(_select_nodes(len(inner)), params)
            found.update((NodeId(int(lv), int(i)), bytes(h)) for lv, i, h in node_rows)
        out: list[bytes] = []
        for node in ids:
            h = found.get(node)
            if h is None:
                raise ProofInvalid(f"log storage is missing node {node}")
            out.append(h)
        return out

    def read_leaves(self, start: int, end: int) -> list[tuple[int, bytes, bytes]]:
        rows = self._conn.execute(
            select(leaves.c.idx, leaves.c.leaf_hash, leaves.c.entry)
            .where(leaves.c.idx >= start, leaves.c.idx < end)
            .order_by(leaves.c.idx)
        )
        return [(int(i), bytes(h), bytes(e)) for i, h, e in rows]

    def read_level(self, level: int, start: int, end: int) -> list[tuple[int, bytes]]:
        rows = self._conn.execute(
            select(nodes.c.idx, nodes.c.hash)
            .where(nodes.c.level == level, nodes.c.idx >= start, nodes.c.idx < end)
            .order_by(nodes.c.idx)
        )
        return [(int(i), bytes(h)) for i, h in rows]

    def level_counts(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        n_leaves = self._conn.execute(select(func.count()).select_from(leaves)).scalar_one()
        if n_leaves:
            counts[0] = int(n_leaves)
        rows = self._conn.execute(select(nodes.c.level, func.count()).group_by(nodes.c.level))
        counts.update((int(lv), int(n)) for lv, n in rows)
        return counts

    def checkpoints(self) -> list[str]:
        rows = self._conn.execute(select(checkpoints.c.note).order_by(checkpoints.c.seq))
        return [str(n) for (n,) in rows]

    def latest_checkpoint(self) -> str | None:
        row = self._conn.execute(
            select(checkpoints.c.note).order_by(checkpoints.c.seq.desc()).limit(1)
        ).first()
        return None if row is None else str(row[0])

    def append(
        self,
        old_size: int,
        leaf_rows: Sequence[tuple[bytes, bytes]],
        node_rows: Sequence[tuple[NodeId, bytes]],
    ) -> None:
        new_size = old_size + len(leaf_rows)
        moved = self._conn.execute(
            update(head).where(head.c.id == 1, head.c.size == old_size).values(size=new_size)
        )
        if moved.rowcount != 1:
            raise Conflict(f"the log is no longer at size {old_size}; append abandoned")
        self._conn.execute(
            leaves.insert(),
            [
                {"idx": old_size + i, "leaf_hash": h, "entry": e}
                for i, (h, e) in enumerate(leaf_rows)
            ],
        )
        if node_rows:
            self._conn.execute(
                nodes.insert(),
                [{"level": n.level, "idx": n.index, "hash": h} for n, h in node_rows],
            )

    def add_checkpoint(self, size: int, root_hash: bytes, note: str) -> None:
        self._conn.execute(checkpoints.insert().values(size=size, root_hash=root_hash, note=note))
