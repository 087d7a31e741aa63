"""No-trust protocol runs under requests: the session that ran each, and its logged receipts.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "protocol_runs",
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("session", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("completed_at", sa.BigInteger(), nullable=True),
        sa.Column("receipts", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["request"], ["requests.request"]),
        sa.PrimaryKeyConstraint("request"),
        sa.UniqueConstraint("session", name="protocol_runs_session"),
    )


def downgrade() -> None:
    op.drop_table("protocol_runs")
