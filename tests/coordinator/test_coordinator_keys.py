"""The log key lives in the coordinator's 0600 keystore, never in its database: a copy of the
database cannot sign a checkpoint, and an old database that held the seed gives it up."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from sealroom.coordinator.keys import LOG_KEY_FILE, CoordinatorKeystore
from sealroom.coordinator.log import log_on
from sealroom.errors import Conflict, InvalidInput, KeystoreError
from sealroom.storage.engine import create_engine, write_transaction
from sealroom.storage.migrate import upgrade
from sealroom.storage.schema import settings
from sealroom.transparency.checkpoint import NoteSigner, open_checkpoint

ORIGIN = "sealroom.test/log"
SEED = bytes(range(32))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _settings(engine: Engine) -> dict[str, bytes]:
    with engine.connect() as conn:
        return {
            str(n): bytes(v) for n, v in conn.execute(select(settings.c.name, settings.c.value))
        }


def _raw_database(db: Path) -> bytes:
    """Every byte SQLite keeps for ``db``: the file, its WAL and shared memory."""
    parts = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return b"".join(p.read_bytes() for p in parts if p.exists())


def _key_file(keystore: CoordinatorKeystore, seed: bytes) -> None:
    """A keystore file holding ``seed``, as an operator might have provisioned it."""
    keystore.directory.mkdir(mode=0o700, exist_ok=True)
    doc = {
        "type": "sealroom.coordinator-log-key",
        "version": 1,
        "origin": ORIGIN,
        "seed": base64.b64encode(seed).decode(),
    }
    keystore.log_key_path.write_text(json.dumps(doc))
    keystore.log_key_path.chmod(0o600)


def _legacy(engine: Engine, seed: bytes = SEED) -> str:
    """A database as coordinators before the keystore left it: the seed in ``settings``, and a
    checkpoint signed with it. Returns that checkpoint."""
    with write_transaction(engine) as conn:
        conn.execute(
            settings.insert(),
            [{"name": "log_seed", "value": seed}, {"name": "log_origin", "value": ORIGIN.encode()}],
        )
        log = log_on(conn)
        log.append(b"an old entry")
        return log.checkpoint(NoteSigner.from_seed(ORIGIN, seed))


def test_a_new_log_key_is_created_in_a_0600_file_and_nothing_of_it_in_the_database(
    tmp_path: Path,
) -> None:
    umask = os.umask(0o022)  # the usual default: files would be 0644 without care
    db = tmp_path / "coordinator.db"
    url = f"sqlite:///{db}"
    engine = create_engine(url)
    try:
        upgrade(engine)
        keystore = CoordinatorKeystore.beside(url)
        signer = keystore.log_signer(engine, ORIGIN)
        with write_transaction(engine) as conn:
            log_on(conn).checkpoint(signer)
        key_file = tmp_path / "coordinator.db.keys" / LOG_KEY_FILE
        assert keystore.log_key_path == key_file
        assert _mode(key_file) == 0o600
        assert _mode(key_file.parent) == 0o700
        seed = base64.b64decode(json.loads(key_file.read_text())["seed"])
        assert NoteSigner.from_seed(ORIGIN, seed).verifier.vkey == signer.verifier.vkey
        # The database keeps only public facts of the key.
        stored = _settings(engine)
        assert set(stored) == {"log_origin", "log_vkey"}
        assert stored["log_vkey"] == signer.verifier.vkey.encode()
    finally:
        engine.dispose()
        os.umask(umask)
    raw = _raw_database(db)
    assert seed not in raw
    assert base64.b64encode(seed) not in raw
    # ...and the database file (with its WAL) is its owner's alone.
    assert _mode(db) == 0o600
    for side in ("-wal", "-shm"):
        path = db.with_name(db.name + side)
        if path.exists():
            assert _mode(path) == 0o600


def test_the_key_survives_restarts_and_the_database_never_gets_a_new_one(
    engine: Engine, keystore: CoordinatorKeystore, tmp_path: Path
) -> None:
    first = keystore.log_signer(engine, ORIGIN).verifier.vkey
    assert keystore.log_signer(engine, ORIGIN).verifier.vkey == first
    # Losing the key file must not silently start another log under the same name.
    elsewhere = CoordinatorKeystore(directory=tmp_path / "empty")
    with pytest.raises(KeystoreError, match="missing"):
        elsewhere.log_signer(engine, ORIGIN)
    assert not (tmp_path / "empty" / LOG_KEY_FILE).exists()
    # A copy of the key file works; another key is refused: it is not this database's.
    copy = CoordinatorKeystore(directory=tmp_path / "copy")
    _key_file(copy, base64.b64decode(json.loads(keystore.log_key_path.read_text())["seed"]))
    assert copy.log_signer(engine, ORIGIN).verifier.vkey == first
    forged = CoordinatorKeystore(directory=tmp_path / "forged")
    _key_file(forged, bytes(32))
    with pytest.raises(Conflict, match="not this database's log key"):
        forged.log_signer(engine, ORIGIN)


def test_a_readable_key_file_is_refused(engine: Engine, keystore: CoordinatorKeystore) -> None:
    keystore.log_signer(engine, ORIGIN)
    keystore.log_key_path.chmod(0o644)
    with pytest.raises(KeystoreError, match="chmod 600"):
        keystore.log_signer(engine, ORIGIN)
    keystore.log_key_path.chmod(0o600)
    keystore.directory.chmod(0o777)  # anyone could swap the file
    with pytest.raises(KeystoreError, match="chmod 700"):
        keystore.log_signer(engine, ORIGIN)
    keystore.directory.chmod(0o700)
    keystore.log_key_path.write_bytes(b"{}")
    with pytest.raises(KeystoreError, match="not a coordinator log key"):
        keystore.log_signer(engine, ORIGIN)


def test_a_seed_in_an_old_database_moves_to_the_keystore(
    engine: Engine, keystore: CoordinatorKeystore
) -> None:
    old_checkpoint = _legacy(engine)
    signer = keystore.log_signer(engine, ORIGIN)
    # The same key, so every checkpoint clients hold still verifies and the log goes on.
    assert signer.verifier.vkey == NoteSigner.from_seed(ORIGIN, SEED).verifier.vkey
    open_checkpoint(old_checkpoint, signer.verifier)
    assert _mode(keystore.log_key_path) == 0o600
    assert "log_seed" not in _settings(engine)
    with write_transaction(engine) as conn:
        log_on(conn).append(b"a new entry")
        log_on(conn).checkpoint(signer)
    assert keystore.log_signer(engine, ORIGIN).verifier.vkey == signer.verifier.vkey


def test_after_the_move_the_sqlite_file_holds_no_trace_of_the_seed(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    url = f"sqlite:///{db}"
    engine = create_engine(url)
    try:
        upgrade(engine)
        _legacy(engine)
        assert SEED in _raw_database(db)  # the forgery of issue 12 started here
        CoordinatorKeystore.beside(url).log_signer(engine, ORIGIN)
    finally:
        engine.dispose()
    assert SEED not in _raw_database(db)


def test_a_seed_in_the_database_that_differs_from_the_keystore_is_refused_and_kept(
    engine: Engine, keystore: CoordinatorKeystore
) -> None:
    _legacy(engine)
    _key_file(keystore, bytes(32))  # a keystore of another log key
    with pytest.raises(Conflict, match="refusing to choose"):
        keystore.log_signer(engine, ORIGIN)
    assert _settings(engine)["log_seed"] == SEED  # nothing lost


def test_another_origin_is_refused(engine: Engine, keystore: CoordinatorKeystore) -> None:
    keystore.log_signer(engine, ORIGIN)
    with pytest.raises(Conflict, match="origin"):
        keystore.log_signer(engine, "other.test/log")


def test_postgresql_needs_a_keys_directory() -> None:
    with pytest.raises(InvalidInput, match="--keys"):
        CoordinatorKeystore.beside("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    beside = CoordinatorKeystore.beside("sqlite:////srv/sealroom/coordinator.db")
    assert beside.directory == Path("/srv/sealroom/coordinator.db.keys")


def test_arbiter_key_is_created_once_0600_and_distinct_from_the_log_key(tmp_path: Path) -> None:
    from sealroom.coordinator.keys import ARBITER_KEY_FILE

    store = CoordinatorKeystore(directory=tmp_path / "keys")
    with pytest.raises(KeystoreError, match="no arbiter key"):
        store.arbiter(create=False)
    first = store.arbiter()
    assert store.arbiter().party_id == first.party_id
    assert store.arbiter(create=False).party_id == first.party_id
    path = tmp_path / "keys" / ARBITER_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text('{"type": "other"}')
    path.chmod(0o600)
    with pytest.raises(KeystoreError, match="not a coordinator arbiter key"):
        store.arbiter()
