"""Schema migrations (Alembic, configured in code: no alembic.ini)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

__all__ = ["HEAD", "upgrade"]

HEAD = "0004"
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
