"""Tables of the feedback store (SQLAlchemy Core).

The schema is created and evolved only by the Alembic migrations in
``migrations/versions``; this module is the in-code description the store
queries against, and a test asserts both agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

#: Catalog items. ``key`` is the integer id used inside vector indexes.
items = Table(
    "items",
    metadata,
    Column("key", Integer, primary_key=True, autoincrement=True),
    Column("id", String(512), nullable=False, unique=True),
    Column("text", Text, nullable=False),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: One row per catalog change; an index is in sync up to a change ``seq``.
catalog_changes = Table(
    "catalog_changes",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("item_key", Integer, ForeignKey("items.key"), nullable=False, index=True),
)

#: A search, done here (``source='search'``) or elsewhere (``source='external'``).
searches = Table(
    "searches",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("query", Text, nullable=False),
    Column("user_id", String(256), nullable=True),
    Column("model_version", Integer, nullable=True),
    Column("source", String(16), nullable=False),
    Column("event_id", String(256), nullable=True, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    #: The trial this search was interleaved for (``None``: answered by the active model alone).
    Column("trial_id", Integer, nullable=True, index=True),
)

#: Exactly what was shown for a search: item, rank (1-based), score.
impressions = Table(
    "impressions",
    metadata,
    Column("search_id", String(64), ForeignKey("searches.id"), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("item_id", String(512), nullable=False),
    Column("score", Float, nullable=True),
    #: During a trial: which model contributed the item (``active``, ``candidate``, ``both``).
    Column("source", String(16), nullable=True),
    #: The probability the item was shown at this rank, when a randomised list logged it.
    Column("propensity", Float, nullable=True),
)

#: A user's selection of a shown item. ``seq`` orders feedback events.
selections = Table(
    "selections",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(256), nullable=False, unique=True),
    Column("search_id", String(64), ForeignKey("searches.id"), nullable=False, index=True),
    Column("item_id", String(512), nullable=False),
    Column("rank", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: One fine-tuning cycle: its feedback window, outcome, numbers and reasons.
training_runs = Table(
    "training_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("status", String(16), nullable=False),
    Column("parent_version", Integer, nullable=True),
    Column("version", Integer, nullable=True),
    Column("feedback_from_seq", Integer, nullable=False),
    Column("feedback_to_seq", Integer, nullable=False),
    Column("train_size", Integer, nullable=True),
    Column("holdout_size", Integer, nullable=True),
    Column("metrics", JSON, nullable=True),
    Column("reasons", JSON, nullable=True),
)

#: A candidate judged by users on interleaved results (see ``evaluation/trial_test.py``).
#: ``status``: running -> promoting -> promoted, or running -> rejected / stopped.
trials = Table(
    "trials",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("candidate_version", Integer, nullable=False),
    Column("active_version", Integer, nullable=False),
    Column("run_id", Integer, nullable=True),
    Column("status", String(16), nullable=False, index=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("share", Float, nullable=False),
    Column("max_searches", Integer, nullable=False),
    Column("alpha", Float, nullable=False),
    Column("beta", Float, nullable=False),
    Column("min_effect", Float, nullable=False),
    Column("outcome", JSON, nullable=True),
    Column("reason", Text, nullable=True),
    #: Keys (:func:`embedloop.store.trials.query_key`) of the queries the candidate was trained on:
    #: with ``trial_queries="unseen"`` their searches are not interleaved (migration 0004).
    Column("skip_queries", JSON, nullable=True),
)

#: Named leases (the single-flight training lock). Expired leases can be taken over.
locks = Table(
    "locks",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("owner", String(256), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

#: An explicit relevance judgment: a person or agent said ``item_id`` is (not) relevant to ``query``.
#: ``query_key`` is the normalised query; the newest row per (query_key, item_id) is the label.
judgments = Table(
    "judgments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("query", Text, nullable=False),
    Column("query_key", Text, nullable=False),
    Column("item_id", String(512), nullable=False),
    Column("relevant", Boolean, nullable=False),
    Column("reviewer", String(256), nullable=True),
    Column("review_id", String(64), nullable=True, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: A question of the review queue: which of ``candidates`` are relevant to ``query``, and why it is asked.
review_questions = Table(
    "review_questions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("query", Text, nullable=False),
    Column("query_key", Text, nullable=False, index=True),
    Column("candidates", JSON, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("priority", Float, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("model_version", Integer, nullable=True),
    Column("catalog_revision", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("closed_because", Text, nullable=True),
    Column("answer", JSON, nullable=True),
    Column("reviewer", String(256), nullable=True),
)

Index("ix_selections_search_item", selections.c.search_id, selections.c.item_id)
Index("ix_judgments_query_item", judgments.c.query_key, judgments.c.item_id)
