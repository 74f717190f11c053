"""Trials on unseen queries: ``trials.skip_queries``.

The keys (hashes of the normalised text) of the queries the candidate was
trained on in its cycle. With ``trial_queries="unseen"`` (the default) those
searches are answered by the active model alone: the trial judges the
candidate where its training did not already decide the answer.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("skip_queries", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("skip_queries")
