from __future__ import annotations

from pathlib import Path

import pytest

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

    import sqlalchemy as sa

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
