from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, delete, select, text, update

from sealroom.crypto.merkle import EMPTY_ROOT, leaf_hash
from sealroom.errors import Conflict, InvalidInput, ProofInvalid
from sealroom.transparency.checkpoint import NoteSigner, open_checkpoint
from sealroom.transparency.log import MemoryLogStore, TransparencyLog
from sealroom.transparency.proof import verify_consistency, verify_inclusion
from sealroom.transparency.sqlstore import (
    SqlLogStore,
    checkpoints,
    configure_sqlite,
    head,
    leaves,
    metadata,
    nodes,
    sqlite_engine,
)
from tests.transparency.tlog_helpers import RFC6962_LEAVES, RFC6962_ROOTS, RefTree, flip_bit

ORIGIN = "sealroom.test/log"
SIGNER = NoteSigner.from_seed(ORIGIN, bytes(range(32)))


# The SQL store suite runs on SQLite and on PostgreSQL (see the postgres_url fixture).
# The tables are dropped before and after each test, so use a throwaway database.
BACKENDS = ["sqlite", "postgresql"]

EngineFactory = Callable[[], Engine]


@contextmanager
def engine_factory(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[EngineFactory]:
    """New engines on one database (concurrency tests need one engine per writer)."""
    created: list[Engine] = []
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else ""

    def make() -> Engine:
        eng = sqlite_engine(tmp_path / "log.db") if backend == "sqlite" else create_engine(url)
        created.append(eng)
        return eng

    if backend == "postgresql":
        metadata.drop_all(make())
    try:
        yield make
    finally:
        if backend == "postgresql":
            metadata.drop_all(created[0])
        for eng in created:
            eng.dispose()


@pytest.fixture(params=BACKENDS)
def make_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EngineFactory]:
    with engine_factory(request.param, tmp_path, request) as make:
        yield make


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    return make_engine()


@pytest.fixture
def sql_log(engine: Engine) -> TransparencyLog:
    store = SqlLogStore(engine)
    store.create_schema()
    return TransparencyLog(store)


@pytest.fixture(params=["memory", *BACKENDS])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TransparencyLog]:
    if request.param == "memory":
        yield TransparencyLog(MemoryLogStore())
        return
    with engine_factory(request.param, tmp_path, request) as make:
        store = SqlLogStore(make())
        store.create_schema()
        yield TransparencyLog(store)


@pytest.fixture
def sqlite_only(tmp_path: Path) -> Iterator[Engine]:
    eng = sqlite_engine(tmp_path / "sqlite-only.db")
    yield eng
    eng.dispose()


def entries(n: int, tag: bytes = b"e") -> list[bytes]:
    return [tag + i.to_bytes(4, "big") for i in range(n)]


# --- behaviour common to every store -------------------------------------------------


def test_append_returns_indices_and_stores_entries(log: TransparencyLog) -> None:
    assert log.size() == 0
    assert log.append(b"first") == 0
    assert log.append_many([b"a", b"b", b"c"]) == 1
    assert log.append(b"") == 4
    assert log.size() == 5
    assert [log.entry(i) for i in range(5)] == [b"first", b"a", b"b", b"c", b""]
    with pytest.raises(InvalidInput, match="no entry 5"):
        log.entry(5)


def test_rfc6962_known_roots(log: TransparencyLog) -> None:
    assert log.root_at(0) == EMPTY_ROOT
    for i, leaf in enumerate(RFC6962_LEAVES):
        log.append(leaf)
        assert log.root_at(i + 1).hex() == RFC6962_ROOTS[i]
    for size in range(1, 9):  # past roots stay available
        assert log.root_at(size).hex() == RFC6962_ROOTS[size - 1]


def test_every_proof_for_every_past_size(log: TransparencyLog) -> None:
    data = entries(37)
    for batch in (data[:1], data[1:8], data[8:9], data[9:30], data[30:]):
        log.append_many(batch)
    ref = RefTree(data)
    for size in range(1, 38):
        root = log.root_at(size)
        assert root == ref.root(size)
        for index in range(size):
            proof = log.inclusion_proof(index, size)
            assert proof == ref.inclusion(index, size)
            verify_inclusion(index, size, ref.leaf_hashes[index], proof, root)
        for size1 in range(1, size + 1):
            proof = log.consistency_proof(size1, size)
            assert proof == ref.consistency(size1, size)
            verify_consistency(size1, size, proof, ref.root(size1), root)
    assert log.verify_integrity() == 37


def test_bad_requests(log: TransparencyLog) -> None:
    log.append_many(entries(5))
    with pytest.raises(InvalidInput, match="needs at least one entry"):
        log.append_many([])
    with pytest.raises(InvalidInput, match="must be bytes"):
        log.append_many([b"ok", "text"])  # type: ignore[list-item]
    assert log.size() == 5  # nothing of the bad batch was stored
    with pytest.raises(InvalidInput, match="beyond the log's size"):
        log.inclusion_proof(0, 6)
    with pytest.raises(InvalidInput, match="not in a tree of size"):
        log.inclusion_proof(5, 5)
    with pytest.raises(InvalidInput, match="beyond the log's size"):
        log.consistency_proof(1, 6)
    with pytest.raises(InvalidInput, match="meaningless"):
        log.consistency_proof(0, 5)
    with pytest.raises(InvalidInput, match="backwards"):
        log.consistency_proof(4, 3)
    with pytest.raises(InvalidInput, match="beyond the log's size"):
        log.root_at(6)
    with pytest.raises(InvalidInput):
        log.root_at(-1)
    with pytest.raises(InvalidInput):
        log.entry(-1)


def test_checkpoints_are_signed_and_consistent(log: TransparencyLog) -> None:
    assert log.latest_checkpoint() is None
    note0 = log.checkpoint(SIGNER)
    cp0 = open_checkpoint(note0, SIGNER.verifier)
    assert (cp0.origin, cp0.size, cp0.root_hash) == (ORIGIN, 0, EMPTY_ROOT)
    log.append_many(entries(10))
    cp1 = open_checkpoint(log.checkpoint(SIGNER), SIGNER.verifier)
    assert (cp1.size, cp1.root_hash) == (10, log.root_at(10))
    again = open_checkpoint(log.checkpoint(SIGNER), SIGNER.verifier)  # same size, same root
    assert again == cp1
    log.append(b"more")
    note2 = log.checkpoint(SIGNER, extensions=("note: extension",))
    cp2 = open_checkpoint(note2, SIGNER.verifier)
    assert cp2.extensions == ("note: extension",)
    assert log.latest_checkpoint() == note2
    verify_consistency(10, 11, log.consistency_proof(10, 11), cp1.root_hash, cp2.root_hash)
    assert log.verify_integrity(SIGNER.verifier) == 11


def test_log_refuses_another_origin(log: TransparencyLog) -> None:
    log.append(b"x")
    log.checkpoint(SIGNER)
    other = NoteSigner.from_seed("sealroom.test/other", b"\x03" * 32)
    with pytest.raises(Conflict, match="origin"):
        log.checkpoint(other)


def test_key_rotation_keeps_the_consistency_check(log: TransparencyLog) -> None:
    log.append_many(entries(3))
    log.checkpoint(SIGNER)
    rotated = NoteSigner.from_seed(ORIGIN, b"\x04" * 32)
    log.append(b"after rotation")
    cp = open_checkpoint(log.checkpoint(rotated), rotated.verifier)
    assert cp.size == 4


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=6), st.data())
def test_random_batches_match_the_reference(batches: list[int], data: st.DataObject) -> None:
    log = TransparencyLog(MemoryLogStore())
    all_entries: list[bytes] = []
    for n in batches:
        batch = entries(n, tag=bytes([len(all_entries) % 256]))
        assert log.append_many(batch) == len(all_entries)
        all_entries += batch
    ref = RefTree(all_entries)
    size = data.draw(st.integers(1, len(all_entries)))
    index = data.draw(st.integers(0, size - 1))
    size1 = data.draw(st.integers(1, size))
    assert log.root_at(size) == ref.root(size)
    assert log.inclusion_proof(index, size) == ref.inclusion(index, size)
    assert log.consistency_proof(size1, size) == ref.consistency(size1, size)
    assert log.verify_integrity() == len(all_entries)


# --- SQL store: setup, atomicity, concurrency -----------------------------------------


def test_sqlite_engine_pragmas(sqlite_only: Engine) -> None:
    engine = sqlite_only
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    assert configure_sqlite(engine) is engine  # idempotent


def test_unconfigured_sqlite_engine_is_refused(tmp_path: Path) -> None:
    plain = create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    with pytest.raises(InvalidInput, match="configure_sqlite"):
        SqlLogStore(plain)
    store = SqlLogStore(configure_sqlite(plain))  # the caller applies the helper to its engine
    store.create_schema()
    store.create_schema()  # idempotent
    assert TransparencyLog(store).size() == 0
    plain.dispose()


def test_missing_schema_is_reported(engine: Engine) -> None:
    from sealroom.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable):
        TransparencyLog(SqlLogStore(engine)).size()


def test_a_failed_append_leaves_nothing_behind(
    sql_log: TransparencyLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sealroom.transparency import sqlstore

    sql_log.append_many(entries(6))
    original = sqlstore.SqlLogTxn.append

    def append_then_fail(self: sqlstore.SqlLogTxn, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("crash after the rows were written")

    monkeypatch.setattr(sqlstore.SqlLogTxn, "append", append_then_fail)
    with pytest.raises(RuntimeError):
        sql_log.append_many(entries(10, tag=b"lost"))
    monkeypatch.undo()
    assert sql_log.size() == 6
    assert sql_log.verify_integrity() == 6
    assert sql_log.append(b"next") == 6


def test_concurrent_appenders_do_not_corrupt_the_tree(make_engine: EngineFactory) -> None:
    setup = make_engine()
    SqlLogStore(setup).create_schema()
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        eng = make_engine()  # each writer has its own engine and connections
        try:
            log = TransparencyLog(SqlLogStore(eng))
            for i in range(15):
                if i % 3 == 0:
                    log.append_many([b"w%d-%d-%d" % (w, i, k) for k in range(4)])
                else:
                    log.append(b"w%d-%d" % (w, i))
                if i % 5 == 4:
                    log.checkpoint(SIGNER)
        except BaseException as exc:
            errors.append(exc)
        finally:
            eng.dispose()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    log = TransparencyLog(SqlLogStore(setup))
    assert log.size() == 4 * (5 * 4 + 10)
    assert log.verify_integrity(SIGNER.verifier) == log.size()
    stored = Counter(log.entry(i) for i in range(log.size()))
    assert all(count == 1 for count in stored.values())
    assert {e for e in stored if e.startswith(b"w3-14")} == {b"w3-14"}


# --- a log never signs a checkpoint inconsistent with one it signed -------------------


def _count_checkpoints(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(checkpoints.c.seq)).all())


def test_tampered_leaf_blocks_the_next_checkpoint(sql_log: TransparencyLog, engine: Engine) -> None:
    sql_log.append_many(entries(5))
    sql_log.checkpoint(SIGNER)
    with engine.begin() as conn:
        conn.execute(update(leaves).where(leaves.c.idx == 4).values(leaf_hash=leaf_hash(b"evil")))
    sql_log.append_many(entries(3, tag=b"x"))  # builds node (1, 2) from the tampered leaf
    before = _count_checkpoints(engine)
    with pytest.raises(Conflict, match="not consistent with the checkpoint signed at size 5"):
        sql_log.checkpoint(SIGNER)
    assert _count_checkpoints(engine) == before
    with pytest.raises(ProofInvalid, match="leaf 4"):
        sql_log.verify_integrity()


def test_tampered_node_at_the_same_size_is_a_fork(sql_log: TransparencyLog, engine: Engine) -> None:
    sql_log.append_many(entries(8))
    sql_log.checkpoint(SIGNER)
    with engine.begin() as conn:
        row = conn.execute(select(nodes.c.hash).where(nodes.c.level == 3)).scalar_one()
        conn.execute(update(nodes).where(nodes.c.level == 3).values(hash=flip_bit(row, 0)))
    with pytest.raises(Conflict, match="second, different root for size 8"):
        sql_log.checkpoint(SIGNER)
    with pytest.raises(ProofInvalid, match=r"node \(3, 0\)"):
        sql_log.verify_integrity()


def test_tampered_inner_node_blocks_a_larger_checkpoint(
    sql_log: TransparencyLog, engine: Engine
) -> None:
    sql_log.append_many(entries(6))
    sql_log.checkpoint(SIGNER)  # root(6) = H(node(2,0), node(1,2))
    with engine.begin() as conn:
        conn.execute(
            update(nodes)
            .where(nodes.c.level == 1, nodes.c.idx == 2)
            .values(hash=leaf_hash(b"evil"))
        )
    sql_log.append_many(entries(5, tag=b"y"))
    with pytest.raises(Conflict, match="not consistent"):
        sql_log.checkpoint(SIGNER)


def test_rolled_back_storage_is_refused(sql_log: TransparencyLog, engine: Engine) -> None:
    sql_log.append_many(entries(8))
    sql_log.checkpoint(SIGNER)
    with engine.begin() as conn:  # a restore from an older backup
        conn.execute(delete(leaves).where(leaves.c.idx >= 6))
        conn.execute(delete(nodes).where(nodes.c.level == 3))
        conn.execute(delete(nodes).where(nodes.c.level == 2, nodes.c.idx == 1))
        conn.execute(delete(nodes).where(nodes.c.level == 1, nodes.c.idx == 3))
        conn.execute(update(head).values(size=6))
    with pytest.raises(Conflict, match="refusing to sign size 6"):
        sql_log.checkpoint(SIGNER)
    with pytest.raises(ProofInvalid, match="beyond the log"):
        sql_log.verify_integrity()


def test_tampered_stored_checkpoint_is_not_trusted(
    sql_log: TransparencyLog, engine: Engine
) -> None:
    sql_log.append_many(entries(3))
    note = sql_log.checkpoint(SIGNER)
    forged = note.replace("\n3\n", "\n2\n")
    with engine.begin() as conn:
        conn.execute(update(checkpoints).values(note=forged))
    with pytest.raises(Conflict, match="cannot be trusted"):
        sql_log.checkpoint(SIGNER)
    with pytest.raises(ProofInvalid, match="does not verify"):
        sql_log.verify_integrity(SIGNER.verifier)


def test_integrity_check_finds_missing_and_extra_rows(
    sql_log: TransparencyLog, engine: Engine
) -> None:
    sql_log.append_many(entries(9))
    assert sql_log.verify_integrity() == 9
    with engine.begin() as conn:
        conn.execute(nodes.insert().values(level=1, idx=4, hash=leaf_hash(b"extra")))
    with pytest.raises(ProofInvalid, match="level 1 holds 5"):
        sql_log.verify_integrity()
    with engine.begin() as conn:
        conn.execute(delete(nodes).where(nodes.c.level == 1, nodes.c.idx == 4))
        conn.execute(update(leaves).where(leaves.c.idx == 2).values(entry=b"changed"))
    with pytest.raises(ProofInvalid, match="leaf 2"):
        sql_log.verify_integrity()


# --- crash safety -----------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from sealroom.transparency.checkpoint import NoteSigner
    from sealroom.transparency.log import TransparencyLog
    from sealroom.transparency.sqlstore import SqlLogStore, sqlite_engine

    store = SqlLogStore(sqlite_engine(sys.argv[1]))
    store.create_schema()
    log = TransparencyLog(store)
    signer = NoteSigner.from_seed(sys.argv[2], bytes(range(32)))
    round = 0
    while True:
        round += 1
        log.append_many([b"batch %d/%d" % (round, k) for k in range(64)])
        log.append(b"single %d" % round)
        if round % 3 == 0:
            log.checkpoint(signer)
        print(log.size(), flush=True)
    """
)


@pytest.mark.parametrize("rounds_before_kill", [1, 4, 9])
def test_sigkill_mid_append_leaves_a_verifiable_log(
    tmp_path: Path, rounds_before_kill: int
) -> None:
    path = tmp_path / "crash.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), ORIGIN],
        stdout=subprocess.PIPE,
        text=True,
    )
    committed = 0
    try:
        assert child.stdout is not None
        for _ in range(rounds_before_kill):
            line = child.stdout.readline()
            assert line, "the child process died before it was killed"
            committed = int(line)
    finally:
        child.kill()  # SIGKILL: no cleanup, no rollback by the child
        child.wait()
    assert child.returncode == -9

    eng = sqlite_engine(path)
    try:
        log = TransparencyLog(SqlLogStore(eng))
        size = log.size()
        assert size >= committed
        # Whole transactions only: each round is a batch of 64 and then a single append.
        assert size % 65 in (0, 64)
        assert log.verify_integrity(SIGNER.verifier) == size
        last = log.latest_checkpoint()
        if last is not None:
            cp = open_checkpoint(last, SIGNER.verifier)
            assert cp.root_hash == log.root_at(cp.size)
        # The log carries on and still signs consistently with what it signed before.
        log.append(b"after the crash")
        cp2 = open_checkpoint(log.checkpoint(SIGNER), SIGNER.verifier)
        assert cp2.size == size + 1
    finally:
        eng.dispose()


def test_sqlite_ddl(sqlite_only: Engine) -> None:
    """The tables use portable types; the only SQLite-specific DDL is WITHOUT ROWID."""
    engine = sqlite_only
    store = SqlLogStore(engine)
    store.create_schema()
    with engine.connect() as conn:
        ddl = "\n".join(
            conn.execute(text("SELECT sql FROM sqlite_master WHERE name LIKE 'tlog_%'")).scalars()
        )
    assert "WITHOUT ROWID" in ddl
    assert "length(hash) = 32" in ddl
