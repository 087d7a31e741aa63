"""Deletion records: the coordinator's erasures of sealed blobs and the enclave's Deletions.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=71), nullable=False),
        sa.Column("sealed", sa.String(length=71), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("erased_at", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["request"], ["requests.request"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("erasures_request", "erasures", ["request"], unique=False)
    op.create_table(
        "job_deletions",
        sa.Column("deletion", sa.String(length=71), nullable=False),
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("enclave", sa.String(length=55), nullable=False),
        sa.Column("erased_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["deletion"], ["statements.digest"]),
        sa.ForeignKeyConstraint(["request"], ["requests.request"]),
        sa.PrimaryKeyConstraint("deletion"),
    )
    op.create_index("job_deletions_request", "job_deletions", ["request"], unique=False)


def downgrade() -> None:
    op.drop_index("job_deletions_request", table_name="job_deletions")
    op.drop_table("job_deletions")
    op.drop_index("erasures_request", table_name="erasures")
    op.drop_table("erasures")
