"""Apps get autoscaling bounds per process type (`shipyard scale APP web --min 1 --max 5 --concurrency 20`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (as 0003): a batch copy of `apps` would lose its AUTOINCREMENT.
    op.add_column("apps", sa.Column("autoscale", sa.Text, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("autoscale")
