"""Trials: a candidate judged by users on interleaved results.

Adds the ``trials`` table, ``searches.trial_id`` (the trial a search was
interleaved for) and, per shown item, ``impressions.source`` (which model
contributed it: ``active``, ``candidate`` or ``both``) and
``impressions.propensity`` (the probability it was shown there, when a
randomised list logged one).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "trials",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("candidate_version", sa.Integer, nullable=False),
        sa.Column("active_version", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("max_searches", sa.Integer, nullable=False),
        sa.Column("alpha", sa.Float, nullable=False),
        sa.Column("beta", sa.Float, nullable=False),
        sa.Column("min_effect", sa.Float, nullable=False),
        sa.Column("outcome", sa.JSON, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
    )
    op.create_index("ix_trials_status", "trials", ["status"])
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("trial_id", sa.Integer, nullable=True))
        batch.create_index("ix_searches_trial_id", ["trial_id"])
    with op.batch_alter_table("impressions") as batch:
        batch.add_column(sa.Column("source", sa.String(16), nullable=True))
        batch.add_column(sa.Column("propensity", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("impressions") as batch:
        batch.drop_column("propensity")
        batch.drop_column("source")
    with op.batch_alter_table("searches") as batch:
        batch.drop_index("ix_searches_trial_id")
        batch.drop_column("trial_id")
    op.drop_index("ix_trials_status", "trials")
    op.drop_table("trials")
