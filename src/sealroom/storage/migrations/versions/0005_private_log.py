"""Private statements are logged as salted commitments: each keeps the salt of its leaf.

Revision ID: 0005
Revises: 0004

The log key's seed leaves the database at startup (the coordinator's keystore moves it out;
see sealroom.coordinator.keys), not here: a migration does not know where the keystore is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("statements") as batch:
        batch.add_column(sa.Column("log_salt", sa.LargeBinary(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("statements") as batch:
        batch.drop_column("log_salt")
