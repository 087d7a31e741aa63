"""The credits ledger: accounts, transfers (logged statements), postings, escrows, offers.

Revision ID: 0011
Revises: 0010

Numbered 0010 when it was written against 0007; it runs after 0012 (the marketplace models
and the release keys merged first), so a database already at 0012 gets it as its next step.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credit_accounts",
        sa.Column("account", sa.String(length=80), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "balance >= 0 OR account = 'issuance'", name="credit_accounts_no_overdraft"
        ),
        sa.PrimaryKeyConstraint("account"),
    )
    op.create_table(
        "credit_transfers",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("transfer", sa.String(length=71), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("cause", sa.String(length=71), nullable=True),
        sa.Column("body_digest", sa.String(length=71), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["transfer"], ["statements.digest"]),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("key"),
        sa.UniqueConstraint("transfer"),
    )
    op.create_index("ix_credit_transfers_cause", "credit_transfers", ["cause"])
    op.create_table(
        "credit_postings",
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("account", sa.String(length=80), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["seq"], ["credit_transfers.seq"]),
        sa.PrimaryKeyConstraint("seq", "account"),
    )
    op.create_index("credit_postings_account", "credit_postings", ["account", "seq"])
    op.create_table(
        "credit_escrows",
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("payer", sa.String(length=55), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=False),
        sa.Column("shares", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.CheckConstraint(
            "status IN ('held', 'settled', 'refunded')", name="credit_escrows_status"
        ),
        sa.ForeignKeyConstraint(["request"], ["requests.request"]),
        sa.PrimaryKeyConstraint("request"),
    )
    op.create_table(
        "credit_offers",
        sa.Column("offer", sa.String(length=71), nullable=False),
        sa.Column("owner", sa.String(length=55), nullable=False),
        sa.Column("dataset", sa.String(length=71), nullable=False),
        sa.Column("requester", sa.String(length=55), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["offer"], ["statements.digest"]),
        sa.PrimaryKeyConstraint("offer"),
    )
    op.create_index("ix_credit_offers_owner", "credit_offers", ["owner"])
    op.create_index("ix_credit_offers_requester", "credit_offers", ["requester"])


def downgrade() -> None:
    op.drop_index("ix_credit_offers_requester", table_name="credit_offers")
    op.drop_index("ix_credit_offers_owner", table_name="credit_offers")
    op.drop_table("credit_offers")
    op.drop_table("credit_escrows")
    op.drop_index("credit_postings_account", table_name="credit_postings")
    op.drop_table("credit_postings")
    op.drop_index("ix_credit_transfers_cause", table_name="credit_transfers")
    op.drop_table("credit_transfers")
    op.drop_table("credit_accounts")
