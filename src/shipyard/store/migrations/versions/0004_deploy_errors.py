"""A failed deploy keeps what went wrong and how to fix it (the dashboard's "How to fix this app").

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deploys", sa.Column("error", sa.Text, nullable=True))
    op.add_column("deploys", sa.Column("hint", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deploys") as batch:
        batch.drop_column("hint")
        batch.drop_column("error")
