from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from sealroom.coordinator.keys import CoordinatorKeystore

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO.parent / "shared" / "vectors"


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The shared test vectors (../shared/vectors); tests skip when they are absent."""
    if not VECTORS.is_dir():
        pytest.skip(f"shared test vectors not found at {VECTORS}")
    return VECTORS


DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A reachable PostgreSQL, or a skip that says why (a failure if SEALROOM_REQUIRE_POSTGRES=1).

    The tests drop and create their own tables: point SEALROOM_TEST_POSTGRES_URL at a
    throwaway database.
    """
    import os

    url = os.environ.get("SEALROOM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any driver or connection failure means "unreachable"
        reason = f"PostgreSQL at {url} is unreachable ({type(exc).__name__}: {exc})"
        if os.environ.get("SEALROOM_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " and SEALROOM_REQUIRE_POSTGRES=1")
        pytest.skip(reason + "; set SEALROOM_TEST_POSTGRES_URL or start the server")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: an SQLite file, or a throwaway PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'coordinator.db'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    schema = f"sr_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated coordinator database on each backend (see ``db_url``)."""
    from sealroom.storage.engine import create_engine
    from sealroom.storage.migrate import upgrade

    eng = create_engine(db_url)
    upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def keystore(tmp_path: Path) -> CoordinatorKeystore:
    """The coordinator's keys directory for one test (its log key, never in the database)."""
    from sealroom.coordinator.keys import CoordinatorKeystore

    return CoordinatorKeystore(directory=tmp_path / "coordinator-keys")


@pytest.fixture
def coordinator_url(tmp_path: Path) -> Iterator[str]:
    """A real coordinator (SQLite in ``tmp_path``) on loopback for one test: its URL."""
    from tests.services import coordinator

    with coordinator(tmp_path) as url:
        yield url


@pytest.fixture
def live_url(coordinator_url: str) -> Iterator[str]:
    """A real coordinator with a simulated enclave running its jobs in a thread: its URL."""
    from tests.services import running_enclave

    with running_enclave(coordinator_url):
        yield coordinator_url
