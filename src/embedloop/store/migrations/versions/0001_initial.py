"""Initial schema: items, catalog changes, searches, impressions, selections,
training runs, locks.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("key", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(512), nullable=False, unique=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "catalog_changes",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_key", sa.Integer, sa.ForeignKey("items.key"), nullable=False),
    )
    op.create_index("ix_catalog_changes_item_key", "catalog_changes", ["item_key"])
    op.create_table(
        "searches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("user_id", sa.String(256), nullable=True),
        sa.Column("model_version", sa.Integer, nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(256), nullable=True, unique=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_searches_created_at", "searches", ["created_at"])
    op.create_table(
        "impressions",
        sa.Column("search_id", sa.String(64), sa.ForeignKey("searches.id"), primary_key=True),
        sa.Column("rank", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.String(512), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
    )
    op.create_table(
        "selections",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(256), nullable=False, unique=True),
        sa.Column("search_id", sa.String(64), sa.ForeignKey("searches.id"), nullable=False),
        sa.Column("item_id", sa.String(512), nullable=False),
        sa.Column("rank", sa.Integer, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_selections_search_id", "selections", ["search_id"])
    op.create_index("ix_selections_search_item", "selections", ["search_id", "item_id"])
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("parent_version", sa.Integer, nullable=True),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("feedback_from_seq", sa.Integer, nullable=False),
        sa.Column("feedback_to_seq", sa.Integer, nullable=False),
        sa.Column("train_size", sa.Integer, nullable=True),
        sa.Column("holdout_size", sa.Integer, nullable=True),
        sa.Column("metrics", sa.JSON, nullable=True),
        sa.Column("reasons", sa.JSON, nullable=True),
    )
    op.create_table(
        "locks",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("acquired_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
    )


def downgrade() -> None:
    for name in ("locks", "training_runs", "selections", "impressions", "searches", "catalog_changes", "items"):
        op.drop_table(name)
