"""Owner-only files: created 0600 whatever the umask, wider ones narrowed, and refused when
read as keys if anyone else could read them."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealroom.crypto.files import create_private, read_private, write_private
from sealroom.errors import KeystoreError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_write_private_replaces_a_readable_file_with_a_0600_one(tmp_path: Path) -> None:
    path = tmp_path / "out" / "result.json"
    path.parent.mkdir()
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_private(path, b"new")
    assert path.read_bytes() == b"new"
    assert _mode(path) == 0o600


def test_an_sqlite_database_created_private_keeps_its_wal_private(tmp_path: Path) -> None:
    db = tmp_path / "new" / "state.db"
    create_private(db)
    assert _mode(db) == 0o600
    assert _mode(db.parent) == 0o700
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
        sides = [db.with_name(db.name + s) for s in ("-wal", "-shm")]
        assert all(p.exists() for p in sides)
        for path in (db, *sides):
            assert _mode(path) == 0o600, path.name
    finally:
        conn.close()


def test_an_existing_wider_database_is_narrowed(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    sqlite3.connect(db).close()
    db.chmod(0o644)
    wal = db.with_name(db.name + "-wal")
    wal.write_bytes(b"")
    wal.chmod(0o664)
    create_private(db)
    assert _mode(db) == 0o600
    assert _mode(wal) == 0o600


def test_read_private_refuses_what_others_could_read_or_swap(tmp_path: Path) -> None:
    assert read_private(tmp_path / "absent", what="key") is None
    key = tmp_path / "key"
    write_private(key, b"secret")
    assert read_private(key, what="key") == b"secret"
    key.chmod(0o640)
    with pytest.raises(KeystoreError, match="chmod 600"):
        read_private(key, what="key")
    key.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(key)
    with pytest.raises(KeystoreError, match="symbolic link"):
        read_private(link, what="key")
    with pytest.raises(KeystoreError, match="too large"):
        read_private(key, what="key", max_size=3)
