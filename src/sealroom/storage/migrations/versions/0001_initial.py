"""Initial schema: coordinator tables, the transparency log's tables, full-text search.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sealroom.storage.search import fts_create_statements, fts_drop_statements

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nonces",
        sa.Column("party", sa.String(length=55), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("party", "nonce"),
    )
    op.create_index(op.f("ix_nonces_expires_at"), "nonces", ["expires_at"], unique=False)
    op.create_table(
        "parties",
        sa.Column("party", sa.String(length=55), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("signing_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("sealing_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind IN ('party', 'enclave')", name="parties_kind"),
        sa.PrimaryKeyConstraint("party"),
    )
    op.create_table(
        "request_blobs",
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("dataset", sa.String(length=71), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("request", "dataset"),
    )
    op.create_table(
        "settings",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "statements",
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("signer", sa.String(length=55), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
        sa.UniqueConstraint("log_index"),
    )
    op.create_table(
        "tlog_checkpoints",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.CheckConstraint("size >= 0", name="tlog_checkpoints_size"),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "tlog_head",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="tlog_head_single_row"),
        sa.CheckConstraint("size >= 0", name="tlog_head_size"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "tlog_leaves",
        sa.Column(
            "idx",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("idx >= 0", name="tlog_leaves_idx"),
        sa.CheckConstraint("length(leaf_hash) = 32", name="tlog_leaves_hash_len"),
        sa.PrimaryKeyConstraint("idx"),
    )
    op.create_table(
        "tlog_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.CheckConstraint("idx >= 0", name="tlog_nodes_idx"),
        sa.CheckConstraint("length(hash) = 32", name="tlog_nodes_hash_len"),
        sa.CheckConstraint("level >= 1 AND level < 64", name="tlog_nodes_level"),
        sa.PrimaryKeyConstraint("level", "idx"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "datasets",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("dataset", sa.String(length=71), nullable=False),
        sa.Column("owner", sa.String(length=55), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("time_start", sa.BigInteger(), nullable=True),
        sa.Column("time_end", sa.BigInteger(), nullable=True),
        sa.Column("policy", sa.String(length=71), nullable=True),
        sa.Column("keyword_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("status IN ('active', 'withdrawn')", name="datasets_status"),
        sa.ForeignKeyConstraint(
            ["dataset"],
            ["statements.digest"],
        ),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("dataset"),
    )
    op.create_index("datasets_owner", "datasets", ["owner", "seq"], unique=False)
    op.create_index(
        "datasets_status_rows",
        "datasets",
        ["status", "row_count", "time_start", "time_end"],
        unique=False,
    )
    op.create_table(
        "enclaves",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("evidence", sa.String(length=71), nullable=False),
        sa.Column("party", sa.String(length=55), nullable=False),
        sa.Column("tee", sa.String(length=20), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evidence"],
            ["statements.digest"],
        ),
        sa.ForeignKeyConstraint(
            ["party"],
            ["parties.party"],
        ),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("evidence"),
    )
    op.create_index(op.f("ix_enclaves_party"), "enclaves", ["party"], unique=False)
    op.create_table(
        "policies",
        sa.Column("policy", sa.String(length=71), nullable=False),
        sa.Column("owner", sa.String(length=55), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy"],
            ["statements.digest"],
        ),
        sa.PrimaryKeyConstraint("policy"),
    )
    op.create_index(op.f("ix_policies_owner"), "policies", ["owner"], unique=False)
    op.create_table(
        "requests",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("requester", sa.String(length=55), nullable=False),
        sa.Column("computation_id", sa.String(length=64), nullable=False),
        sa.Column("computation_version", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("precheck", sa.Text(), nullable=False),
        sa.Column("receipt", sa.String(length=71), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'running', 'completed', 'failed', 'rejected', 'withdrawn', 'expired')",
            name="requests_status",
        ),
        sa.ForeignKeyConstraint(
            ["request"],
            ["statements.digest"],
        ),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("request"),
    )
    op.create_index(op.f("ix_requests_requester"), "requests", ["requester"], unique=False)
    op.create_index("requests_status_seq", "requests", ["status", "seq"], unique=False)
    op.create_table(
        "dataset_keywords",
        sa.Column("term", sa.String(length=100), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["seq"],
            ["datasets.seq"],
        ),
        sa.PrimaryKeyConstraint("term", "seq"),
    )
    op.create_index("dataset_keywords_seq", "dataset_keywords", ["seq", "term"], unique=False)
    op.create_table(
        "jobs",
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("evidence", sa.String(length=71), nullable=False),
        sa.Column("enclave", sa.String(length=55), nullable=False),
        sa.Column("claimed_at", sa.BigInteger(), nullable=False),
        sa.Column("lease_until", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request"],
            ["requests.request"],
        ),
        sa.PrimaryKeyConstraint("request"),
    )
    op.create_index(op.f("ix_jobs_lease_until"), "jobs", ["lease_until"], unique=False)
    op.create_table(
        "request_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request"],
            ["requests.request"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_request_history_request"), "request_history", ["request"], unique=False
    )
    op.create_table(
        "request_inputs",
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("dataset", sa.String(length=71), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=55), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("approval", sa.String(length=71), nullable=True),
        sa.Column("enclave", sa.String(length=71), nullable=True),
        sa.Column("sealed_size", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "decision IN ('pending', 'approve', 'reject')", name="request_inputs_decision"
        ),
        sa.ForeignKeyConstraint(
            ["dataset"],
            ["datasets.dataset"],
        ),
        sa.ForeignKeyConstraint(
            ["request"],
            ["requests.request"],
        ),
        sa.PrimaryKeyConstraint("request", "dataset"),
    )
    op.create_index(op.f("ix_request_inputs_owner"), "request_inputs", ["owner"], unique=False)
    op.create_index("request_inputs_dataset", "request_inputs", ["dataset"], unique=False)
    op.create_table(
        "request_recipients",
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("party", sa.String(length=55), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request"],
            ["requests.request"],
        ),
        sa.PrimaryKeyConstraint("request", "party"),
    )
    op.create_index("request_recipients_party", "request_recipients", ["party"], unique=False)
    op.create_table(
        "results",
        sa.Column("request", sa.String(length=71), nullable=False),
        sa.Column("recipient", sa.String(length=55), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request"],
            ["requests.request"],
        ),
        sa.PrimaryKeyConstraint("request", "recipient"),
    )
    bind = op.get_bind()
    for statement in fts_create_statements(bind.dialect.name):
        op.execute(statement)
    op.execute("INSERT INTO tlog_head (id, size) VALUES (1, 0)")


def downgrade() -> None:
    bind = op.get_bind()
    for statement in fts_drop_statements(bind.dialect.name):
        op.execute(statement)
    for table in (
        "results",
        "request_recipients",
        "request_inputs",
        "request_history",
        "jobs",
        "dataset_keywords",
        "requests",
        "policies",
        "enclaves",
        "datasets",
        "tlog_nodes",
        "tlog_leaves",
        "tlog_head",
        "tlog_checkpoints",
        "statements",
        "settings",
        "request_blobs",
        "parties",
        "nonces",
    ):
        op.drop_table(table)
