"""Feedback and catalog persistence (SQLAlchemy 2; SQLite by default, any database by URL)."""

from embedloop.store.store import CatalogRow, FeedbackStore

__all__ = ["CatalogRow", "FeedbackStore"]
