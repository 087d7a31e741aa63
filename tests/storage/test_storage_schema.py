from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select

from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.coordinator.log import append_statement
from sealroom.coordinator.state import DbNonceStore
from sealroom.crypto.keys import Identity
from sealroom.errors import AuthenticationFailed, BackendUnavailable, Conflict, InvalidInput
from sealroom.statements import Envelope, sign_statement
from sealroom.storage.engine import create_engine, read_transaction, write_transaction
from sealroom.storage.migrate import upgrade
from sealroom.storage.schema import all_metadata, nonces, parties, statements
from sealroom.transparency.checkpoint import NoteSigner
from sealroom.transparency.log import TransparencyLog
from sealroom.transparency.sqlstore import SqlLogStore, checkpoints, leaves
from tests.helpers import T0, attestation, identity


def _fts_filter(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # The full-text objects are dialect-specific DDL outside the metadata (checked below).
    return not (name or "").startswith(("dataset_fts", "sealroom_schema_version"))


def test_storage_migrated_schema_matches_metadata(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_object": _fts_filter, "compare_type": True}
        )
        diffs = compare_metadata(ctx, all_metadata())
    assert diffs == []
    names = set(sa.inspect(engine).get_table_names())
    assert {"tlog_head", "tlog_leaves", "tlog_nodes", "tlog_checkpoints", "dataset_fts"} <= names
    assert set(all_metadata().tables) <= names


def test_storage_upgrade_is_idempotent_and_log_store_works(engine: Engine) -> None:
    upgrade(engine)
    log = TransparencyLog(SqlLogStore(engine))
    assert log.size() == 0
    assert log.append(b"entry") == 0
    assert log.entry(0) == b"entry"


def test_storage_log_key_survives_restart(db_url: str, keystore: CoordinatorKeystore) -> None:
    eng = create_engine(db_url)
    upgrade(eng)
    first = keystore.log_signer(eng, "sealroom.test/log").verifier.vkey
    eng.dispose()
    eng = create_engine(db_url)
    assert keystore.log_signer(eng, "sealroom.test/log").verifier.vkey == first
    with pytest.raises(Conflict):
        keystore.log_signer(eng, "other.test/log")
    eng.dispose()


def _half_write(engine: Engine, signer: NoteSigner, alice: Identity, env: Envelope) -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            parties.insert().values(
                party=alice.party_id,
                kind="party",
                name="alice",
                signing_key=alice.public.signing_key,
                sealing_key=alice.public.sealing_key,
                registered_at=T0,
            )
        )
        index, _ = append_statement(conn, env, signer)
        conn.execute(
            statements.insert().values(
                digest=env.digest,
                type=env.type,
                signer=alice.party_id,
                envelope=env.to_json(),
                log_index=index,
                stored_at=T0,
            )
        )
        raise RuntimeError("crash in the middle of the write")


def test_storage_failed_transaction_leaves_nothing(
    engine: Engine, keystore: CoordinatorKeystore
) -> None:
    signer = keystore.log_signer(engine, "sealroom.test/log")
    alice = identity("alice")
    env = sign_statement(attestation(alice), alice).envelope
    with pytest.raises(RuntimeError):
        _half_write(engine, signer, alice, env)
    with read_transaction(engine) as conn:
        for table in (parties, statements, leaves, checkpoints):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0
    assert TransparencyLog(SqlLogStore(engine)).size() == 0


def test_storage_duplicate_insert_is_conflict(engine: Engine) -> None:
    row = {"party": identity("a").party_id, "nonce": "n", "expires_at": T0}
    with write_transaction(engine) as conn:
        conn.execute(nonces.insert().values(**row))
    with pytest.raises(Conflict), write_transaction(engine) as conn:
        conn.execute(nonces.insert().values(**row))


def test_storage_nonces_once_and_purged(engine: Engine) -> None:
    store = DbNonceStore(engine)
    party = identity("alice").party_id
    store.remember(party, "AAAA", expires_at=T0 + 300, now=T0)
    with pytest.raises(AuthenticationFailed):
        store.remember(party, "AAAA", expires_at=T0 + 300, now=T0 + 1)
    store.remember(identity("bob").party_id, "AAAA", expires_at=T0 + 300, now=T0)
    store.remember(party, "BBBB", expires_at=T0 + 1000, now=T0 + 301)
    with read_transaction(engine) as conn:
        left = sorted(conn.execute(select(nonces.c.nonce)).scalars())
    assert left == ["BBBB"]


def test_storage_engine_refuses_unknown_urls() -> None:
    with pytest.raises(InvalidInput):
        create_engine("mysql://x/y")
    with pytest.raises(InvalidInput):
        create_engine("sqlite://")


def test_storage_engine_names_the_extra_when_the_postgres_driver_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sealroom.storage.engine as engine_module

    monkeypatch.setattr(engine_module, "find_spec", lambda name: None)
    with pytest.raises(BackendUnavailable, match=r"sealroom\[postgres\]"):
        create_engine("postgresql://postgres@127.0.0.1:5432/test")
