"""Post-quantum identities: a party's X-Wing (ML-KEM-768 + X25519) public key.

NULL for identities made before seal suite 2; their party ids do not hash one.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("parties") as batch:
        batch.add_column(sa.Column("kem_key", sa.LargeBinary(length=1216), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("parties") as batch:
        batch.drop_column("kem_key")
