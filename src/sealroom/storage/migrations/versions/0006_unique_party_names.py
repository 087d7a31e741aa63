"""One party per display name: ``parties.name_key`` with a unique index.

Revision ID: 0006
Revises: 0005

Existing rows get their key in registration order; a name registered again before
this revision keeps its first holder, and later holders get NULL (they keep their
name, shown with their fingerprint, but no one can take it anew).
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _name_key(name: str) -> str:
    # Frozen copy of sealroom.text.name_key as of this revision.
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def upgrade() -> None:
    with op.batch_alter_table("parties") as batch:
        batch.add_column(sa.Column("name_key", sa.String(length=200), nullable=True))
    parties = sa.table(
        "parties",
        sa.column("party", sa.String),
        sa.column("kind", sa.String),
        sa.column("name", sa.String),
        sa.column("name_key", sa.String),
        sa.column("registered_at", sa.BigInteger),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(parties.c.party, parties.c.name)
        .where(parties.c.kind == "party")
        .order_by(parties.c.registered_at, parties.c.party)
    ).all()
    taken: set[str] = set()
    for party, name in rows:
        key = _name_key(name)
        if key in taken:
            continue
        taken.add(key)
        conn.execute(sa.update(parties).where(parties.c.party == party).values(name_key=key))
    op.create_index("parties_name_key", "parties", ["name_key"], unique=True)


def downgrade() -> None:
    op.drop_index("parties_name_key", table_name="parties")
    with op.batch_alter_table("parties") as batch:
        batch.drop_column("name_key")
