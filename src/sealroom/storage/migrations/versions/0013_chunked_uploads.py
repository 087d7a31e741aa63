"""Chunked, resumable uploads of sealed inputs: one row per upload, one per part.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "input_uploads",
        sa.Column("upload", sa.String(length=71), nullable=False),
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("dataset", sa.String(length=71), nullable=False),
        sa.Column("owner", sa.String(length=55), nullable=False),
        sa.Column("enclave", sa.String(length=71), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("part_size", sa.Integer(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("digests", sa.LargeBinary(), nullable=False),
        sa.Column("leaves", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("completed_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("upload"),
    )
    op.create_index("input_uploads_input", "input_uploads", ["request", "dataset"], unique=True)
    op.create_table(
        "input_parts",
        sa.Column("upload", sa.String(length=71), nullable=False),
        sa.Column("part", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["upload"], ["input_uploads.upload"]),
        sa.PrimaryKeyConstraint("upload", "part"),
    )


def downgrade() -> None:
    op.drop_table("input_parts")
    op.drop_index("input_uploads_input", table_name="input_uploads")
    op.drop_table("input_uploads")
