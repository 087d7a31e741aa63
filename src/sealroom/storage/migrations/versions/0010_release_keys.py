"""Commit-then-reveal: a result's release key, sealed to its recipient, posted after the charges
are proved logged (null until the enclave releases it).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("release_key", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("released_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("results") as batch:
        batch.drop_column("released_at")
        batch.drop_column("release_key")
