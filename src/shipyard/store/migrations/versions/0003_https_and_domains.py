"""Apps get HTTPS settings (redirect, HSTS) and custom domains with their certificate's state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN: a batch (copy-and-move) of `apps` would lose its AUTOINCREMENT, and app ids, from which
    # uids derive, must never be reused.
    op.add_column("apps", sa.Column("redirect_https", sa.Boolean, nullable=True))
    op.add_column("apps", sa.Column("hsts", sa.Boolean, nullable=False, server_default=sa.text("0")))
    op.create_table(
        "domains",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("app_id", sa.Integer, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("hostname", sa.String(253), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("not_after", sa.DateTime, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("domains")
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("hsts")
        batch.drop_column("redirect_https")
