"""Alembic's entry point, run by shipyard.store.schema.upgrade_schema on a connection it opened.

The caller owns the transaction (one for every pending revision together, so a failed upgrade leaves the
store as it was) and has turned foreign keys off, as SQLite's table-rebuild procedure needs.

A new revision: `python -c "from shipyard.store.schema import new_revision; new_revision('add x to apps')"`,
then write its upgrade() with `op` (op.batch_alter_table for SQLite's column changes).
"""

from __future__ import annotations

from alembic import context

from shipyard.store.models import Base

context.configure(connection=context.config.attributes["connection"], target_metadata=Base.metadata,
                  render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
