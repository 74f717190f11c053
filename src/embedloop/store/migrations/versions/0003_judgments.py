"""Explicit judgments and the review queue: tables ``judgments`` and ``review_questions``.

Revision ID: 0003
Revises: 0002 (re-pointed to 0002 when the trials migration is merged)
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "judgments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("query_key", sa.Text, nullable=False),
        sa.Column("item_id", sa.String(512), nullable=False),
        sa.Column("relevant", sa.Boolean, nullable=False),
        sa.Column("reviewer", sa.String(256), nullable=True),
        sa.Column("review_id", sa.String(64), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_judgments_review_id", "judgments", ["review_id"])
    op.create_index("ix_judgments_query_item", "judgments", ["query_key", "item_id"])
    op.create_table(
        "review_questions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("query_key", sa.Text, nullable=False),
        sa.Column("candidates", sa.JSON, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("priority", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=True),
        sa.Column("catalog_revision", sa.Integer, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("closed_at", TZ, nullable=True),
        sa.Column("closed_because", sa.Text, nullable=True),
        sa.Column("answer", sa.JSON, nullable=True),
        sa.Column("reviewer", sa.String(256), nullable=True),
    )
    op.create_index("ix_review_questions_query_key", "review_questions", ["query_key"])
    op.create_index("ix_review_questions_status", "review_questions", ["status"])


def downgrade() -> None:
    op.drop_table("review_questions")
    op.drop_table("judgments")
