"""Schema migrations (Alembic, configured in code: no alembic.ini)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

__all__ = ["VERSION_TABLE", "current_revision", "head_revision", "upgrade"]

VERSION_TABLE = "sealroom_schema_version"
_SCRIPTS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest schema (idempotent; one transaction).

    On SQLite the write lock is held from BEGIN, on PostgreSQL an advisory
    lock serializes concurrent starts, so two servers starting at once do not
    both create the tables.
    """
    cfg = _config()
    with engine.connect() as conn:
        conn.execution_options(sealroom_tlog_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(72656561)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


@cache
def head_revision() -> str:
    """The newest revision this release's migrations define (read once from the scripts, so
    it cannot go stale when a migration is added)."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise RuntimeError("no migrations are installed")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database's schema is at (None: never migrated). Readiness compares it
    with :func:`head_revision`: a replica of another release must not serve this schema."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()
