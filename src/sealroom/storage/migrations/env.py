"""Alembic environment: runs on the connection handed over by :func:`sealroom.storage.migrate.upgrade`.

There is no alembic.ini and no URL here: the caller owns the engine.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from sealroom.storage.migrate import VERSION_TABLE
from sealroom.storage.schema import all_metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=all_metadata(),
        version_table=VERSION_TABLE,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through sealroom.storage.migrate.upgrade(engine)")
_run(connection)
