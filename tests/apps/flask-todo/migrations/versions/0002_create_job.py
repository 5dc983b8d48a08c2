"""create the job table for the worker

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("payload", sa.String(200), nullable=False),
        sa.Column("result", sa.String(200)),
    )


def downgrade():
    op.drop_table("job")
