"""Alembic migrations for the feedback store, applied on open."""
