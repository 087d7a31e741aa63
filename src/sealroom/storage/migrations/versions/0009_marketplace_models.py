"""The marketplace's models, uses, evaluations, reviews, portfolios and disputes.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_DIGEST = sa.String(length=71)
_PARTY = sa.String(length=55)


def upgrade() -> None:
    op.create_table(
        "market_models",
        sa.Column("model", _DIGEST, nullable=False),
        sa.Column("trainer", _PARTY, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("artifact", _DIGEST, nullable=False),
        sa.Column("artifact_root", sa.String(length=44), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["model"], ["statements.digest"]),
        sa.PrimaryKeyConstraint("model"),
        sa.UniqueConstraint("artifact"),
    )
    op.create_index("ix_market_models_trainer", "market_models", ["trainer"])
    op.create_table(
        "model_inputs",
        sa.Column("model", _DIGEST, nullable=False),
        sa.Column("dataset", _DIGEST, nullable=False),
        sa.ForeignKeyConstraint(["model"], ["market_models.model"]),
        sa.PrimaryKeyConstraint("model", "dataset"),
    )
    op.create_index("model_inputs_dataset", "model_inputs", ["dataset"])
    op.create_table(
        "model_uses",
        sa.Column("request", _DIGEST, nullable=False),
        sa.Column("model", _DIGEST, nullable=False),
        sa.Column("payer", _PARTY, nullable=False),
        sa.Column("payee", _PARTY, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("receipt", _DIGEST, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("settled_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("status IN ('paid', 'unpaid')", name="model_uses_status"),
        sa.ForeignKeyConstraint(["model"], ["market_models.model"]),
        sa.ForeignKeyConstraint(["request"], ["requests.request"]),
        sa.PrimaryKeyConstraint("request"),
    )
    op.create_index("ix_model_uses_model", "model_uses", ["model"])
    op.create_index("ix_model_uses_payer", "model_uses", ["payer"])
    op.create_table(
        "evaluations",
        sa.Column("evaluation", _DIGEST, nullable=False),
        sa.Column("model", _DIGEST, nullable=False),
        sa.Column("evaluator", _PARTY, nullable=False),
        sa.Column("use", _DIGEST, nullable=False),
        sa.Column("score", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["evaluation"], ["statements.digest"]),
        sa.ForeignKeyConstraint(["model"], ["market_models.model"]),
        sa.ForeignKeyConstraint(["use"], ["model_uses.request"]),
        sa.PrimaryKeyConstraint("evaluation"),
        sa.UniqueConstraint("use"),
    )
    op.create_index("ix_evaluations_model", "evaluations", ["model"])
    op.create_index("ix_evaluations_evaluator", "evaluations", ["evaluator"])
    op.create_table(
        "reviews",
        sa.Column("review", _DIGEST, nullable=False),
        sa.Column("evaluation", _DIGEST, nullable=False),
        sa.Column("reviewer", _PARTY, nullable=False),
        sa.Column("use", _DIGEST, nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["evaluation"], ["evaluations.evaluation"]),
        sa.ForeignKeyConstraint(["review"], ["statements.digest"]),
        sa.ForeignKeyConstraint(["use"], ["model_uses.request"]),
        sa.PrimaryKeyConstraint("review"),
    )
    op.create_index("reviews_once", "reviews", ["evaluation", "reviewer"], unique=True)
    op.create_table(
        "portfolios",
        sa.Column("portfolio", _DIGEST, nullable=False),
        sa.Column("curator", _PARTY, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("fee", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["portfolio"], ["statements.digest"]),
        sa.PrimaryKeyConstraint("portfolio"),
    )
    op.create_index("ix_portfolios_curator", "portfolios", ["curator"])
    op.create_table(
        "portfolio_items",
        sa.Column("portfolio", _DIGEST, nullable=False),
        sa.Column("dataset", _DIGEST, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["dataset"], ["datasets.dataset"]),
        sa.ForeignKeyConstraint(["portfolio"], ["portfolios.portfolio"]),
        sa.PrimaryKeyConstraint("portfolio", "dataset"),
    )
    op.create_table(
        "portfolio_requests",
        sa.Column("request", _DIGEST, nullable=False),
        sa.Column("portfolio", _DIGEST, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("settled_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pledged', 'paid', 'unpaid')", name="portfolio_requests_status"
        ),
        sa.ForeignKeyConstraint(["portfolio"], ["portfolios.portfolio"]),
        sa.ForeignKeyConstraint(["request"], ["requests.request"]),
        sa.PrimaryKeyConstraint("request"),
    )
    op.create_index("ix_portfolio_requests_portfolio", "portfolio_requests", ["portfolio"])
    op.create_table(
        "disputes",
        sa.Column("dispute", _DIGEST, nullable=False),
        sa.Column("claimant", _PARTY, nullable=False),
        sa.Column("respondent", _PARTY, nullable=False),
        sa.Column("request", _DIGEST, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("resolution", _DIGEST, nullable=True),
        sa.Column("refund", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("status IN ('open', 'upheld', 'dismissed')", name="disputes_status"),
        sa.ForeignKeyConstraint(["dispute"], ["statements.digest"]),
        sa.ForeignKeyConstraint(["request"], ["requests.request"]),
        sa.PrimaryKeyConstraint("dispute"),
    )
    op.create_index("ix_disputes_claimant", "disputes", ["claimant"])
    op.create_index("ix_disputes_respondent", "disputes", ["respondent"])


def downgrade() -> None:
    for index, table in (
        ("ix_disputes_respondent", "disputes"),
        ("ix_disputes_claimant", "disputes"),
    ):
        op.drop_index(index, table_name=table)
    op.drop_table("disputes")
    op.drop_index("ix_portfolio_requests_portfolio", table_name="portfolio_requests")
    op.drop_table("portfolio_requests")
    op.drop_table("portfolio_items")
    op.drop_index("ix_portfolios_curator", table_name="portfolios")
    op.drop_table("portfolios")
    op.drop_index("reviews_once", table_name="reviews")
    op.drop_table("reviews")
    op.drop_index("ix_evaluations_evaluator", table_name="evaluations")
    op.drop_index("ix_evaluations_model", table_name="evaluations")
    op.drop_table("evaluations")
    op.drop_index("ix_model_uses_payer", table_name="model_uses")
    op.drop_index("ix_model_uses_model", table_name="model_uses")
    op.drop_table("model_uses")
    op.drop_index("model_inputs_dataset", table_name="model_inputs")
    op.drop_table("model_inputs")
    op.drop_index("ix_market_models_trainer", table_name="market_models")
    op.drop_table("market_models")
