"""The deployment's budget ledger (charges as logged statements) and job attempts.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_charges",
        sa.Column("dataset", sa.String(length=71), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("charge", sa.String(length=71), nullable=False),
        sa.Column("charged_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["charge"], ["statements.digest"]),
        sa.ForeignKeyConstraint(["request"], ["requests.request"]),
        sa.PrimaryKeyConstraint("dataset", "seq"),
        sa.UniqueConstraint("charge"),
    )
    op.create_index("ledger_charges_request", "ledger_charges", ["request", "dataset"], unique=True)
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("attempts")
    op.drop_index("ledger_charges_request", table_name="ledger_charges")
    op.drop_table("ledger_charges")
