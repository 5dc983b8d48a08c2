"""Alembic migrations of the store's schema, run by shipyard.store.schema (no alembic.ini needed)."""
