"""Apps get a metrics history: minute and hour buckets of requests, latency, instances, CPU and memory.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metrics",
        sa.Column("app_id", sa.Integer, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("resolution", sa.Integer, nullable=False),
        sa.Column("start", sa.Integer, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("status_1xx", sa.Integer, nullable=False),
        sa.Column("status_2xx", sa.Integer, nullable=False),
        sa.Column("status_3xx", sa.Integer, nullable=False),
        sa.Column("status_4xx", sa.Integer, nullable=False),
        sa.Column("status_5xx", sa.Integer, nullable=False),
        sa.Column("latency", sa.Text, nullable=False),
        sa.Column("bytes_sent", sa.Integer, nullable=False),
        sa.Column("instances", sa.Integer, nullable=False),
        sa.Column("usage", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("app_id", "resolution", "start"),
        sqlite_with_rowid=False,  # the primary key is the table: no second b-tree for the store's bulkiest rows
    )


def downgrade() -> None:
    op.drop_table("metrics")
