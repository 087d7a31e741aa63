"""Result retention: when a completed request's sealed results may be kept until.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("retention_seconds", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("results_until", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("results_deleted_at", sa.BigInteger(), nullable=True))
    op.create_index("requests_results_until", "requests", ["results_until"], unique=False)


def downgrade() -> None:
    op.drop_index("requests_results_until", table_name="requests")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("results_deleted_at")
        batch.drop_column("results_until")
        batch.drop_column("retention_seconds")
