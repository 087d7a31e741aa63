"""Rooms: rooms, members (invitations, pre-checks, consents), runs, events, organisation
members and per-member run approvals.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rooms",
        sa.Column("room", sa.String(length=71), nullable=False),
        sa.Column("host", sa.String(length=55), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=71), nullable=False),
        sa.Column("snapshot_digest", sa.String(length=71), nullable=False),
        sa.Column("risky", sa.Boolean(), nullable=False),
        sa.Column("approvers_required", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("max_parties", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["room"], ["statements.digest"]),
        sa.ForeignKeyConstraint(["policy"], ["statements.digest"]),
        sa.PrimaryKeyConstraint("room"),
        sa.UniqueConstraint("policy"),
    )
    op.create_index("ix_rooms_host", "rooms", ["host"])
    op.create_table(
        "room_members",
        sa.Column("room", sa.String(length=71), nullable=False),
        sa.Column("party", sa.String(length=55), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("invitation", sa.String(length=71), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("precheck", sa.Text(), nullable=True),
        sa.Column("joined_at", sa.BigInteger(), nullable=True),
        sa.Column("consent", sa.String(length=71), nullable=True),
        sa.Column("consent_state", sa.String(length=10), nullable=False, server_default="none"),
        sa.Column("consent_at", sa.BigInteger(), nullable=True),
        sa.Column("invited_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["room"], ["rooms.room"]),
        sa.ForeignKeyConstraint(["party"], ["parties.party"]),
        sa.PrimaryKeyConstraint("room", "party"),
    )
    op.create_index("room_members_party", "room_members", ["party"])
    op.create_table(
        "room_runs",
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("room", sa.String(length=71), nullable=False),
        sa.Column("shape", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["request"], ["requests.request"]),
        sa.ForeignKeyConstraint(["room"], ["rooms.room"]),
        sa.PrimaryKeyConstraint("request"),
    )
    op.create_index("ix_room_runs_room", "room_runs", ["room"])
    op.create_table(
        "room_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("room", sa.String(length=71), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("party", sa.String(length=55), nullable=True),
        sa.Column("request", sa.String(length=71), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["room"], ["rooms.room"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_room_events_room", "room_events", ["room"])
    op.create_table(
        "org_members",
        sa.Column("org", sa.String(length=55), nullable=False),
        sa.Column("member", sa.String(length=55), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("statement", sa.String(length=71), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["org"], ["parties.party"]),
        sa.ForeignKeyConstraint(["member"], ["parties.party"]),
        sa.ForeignKeyConstraint(["statement"], ["statements.digest"]),
        sa.PrimaryKeyConstraint("org", "member"),
    )
    op.create_index("org_members_member", "org_members", ["member"])
    op.create_table(
        "run_approvals",
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("approver", sa.String(length=55), nullable=False),
        sa.Column("org", sa.String(length=55), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("statement", sa.String(length=71), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["request"], ["requests.request"]),
        sa.ForeignKeyConstraint(["statement"], ["statements.digest"]),
        sa.PrimaryKeyConstraint("request", "approver"),
    )


def downgrade() -> None:
    op.drop_table("run_approvals")
    op.drop_index("org_members_member", table_name="org_members")
    op.drop_table("org_members")
    op.drop_index("ix_room_events_room", table_name="room_events")
    op.drop_table("room_events")
    op.drop_index("ix_room_runs_room", table_name="room_runs")
    op.drop_table("room_runs")
    op.drop_index("room_members_party", table_name="room_members")
    op.drop_table("room_members")
    op.drop_index("ix_rooms_host", table_name="rooms")
    op.drop_table("rooms")
