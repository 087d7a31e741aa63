"""The relay for protocols run between parties: sessions, participants, sealed messages.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("session", sa.String(length=32), nullable=False),
        sa.Column("protocol", sa.String(length=64), nullable=False),
        sa.Column("request", sa.String(length=71), nullable=True),
        sa.Column("created_by", sa.String(length=55), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session"),
    )
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"], unique=False)
    op.create_table(
        "session_participants",
        sa.Column("session", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("party", sa.String(length=55), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["session"], ["sessions.session"]),
        sa.PrimaryKeyConstraint("session", "role"),
    )
    op.create_index("session_participants_party", "session_participants", ["party"], unique=False)
    op.create_index(
        "session_participants_unique_party",
        "session_participants",
        ["session", "party"],
        unique=True,
    )
    op.create_table(
        "session_messages",
        sa.Column("id", _Seq, autoincrement=True, nullable=False),
        sa.Column("session", sa.String(length=32), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["session"], ["sessions.session"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "session_messages_inbox",
        "session_messages",
        ["session", "recipient", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("session_messages_inbox", table_name="session_messages")
    op.drop_table("session_messages")
    op.drop_index("session_participants_unique_party", table_name="session_participants")
    op.drop_index("session_participants_party", table_name="session_participants")
    op.drop_table("session_participants")
    op.drop_index(op.f("ix_sessions_expires_at"), table_name="sessions")
    op.drop_table("sessions")
