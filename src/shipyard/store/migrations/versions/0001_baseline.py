"""Baseline: the store's schema as it was when migrations began.

A new store gets these tables. A store made by a Shipyard from before migrations (no alembic_version
table) is brought to the same shape in place, losing nothing: a missing table is created, and a table
that lacks columns added since (apps.start_command … apps.size, config_vars.build_time), or an apps table
made without AUTOINCREMENT (SQLite then reuses the id of the newest destroyed app, and an app's uids derive
from its id), is rebuilt the way SQLite documents: new table, every row copied, old one dropped, new one
renamed. The tables are frozen here, not taken from models.py, so later model changes never alter the
baseline.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_meta = sa.MetaData()


def _app_id() -> sa.Column[int]:
    return sa.Column("app_id", sa.Integer, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False)


# In the order foreign keys need. Server defaults fill the columns older stores lack when they are copied.
TABLES = (
    sa.Table("apps", _meta,
             sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("name", sa.String(63), nullable=False, unique=True),
             sa.Column("branch", sa.String(255), nullable=False, server_default="main"),
             sa.Column("boot_timeout", sa.Integer, nullable=False, server_default="240"),
             sa.Column("start_command", sa.Text, nullable=False, server_default=""),
             sa.Column("build_command", sa.Text, nullable=False, server_default=""),
             sa.Column("port", sa.Integer, nullable=True),
             sa.Column("formation", sa.Text, nullable=False, server_default="{}"),
             sa.Column("health_path", sa.Text, nullable=False, server_default=""),
             sa.Column("size", sa.String(16), nullable=False, server_default="small"),
             sa.Column("current_release", sa.Integer, nullable=True),
             sa.Column("created_at", sa.DateTime, nullable=False),
             sqlite_autoincrement=True),
    sa.Table("builds", _meta,
             sa.Column("id", sa.Integer, primary_key=True),
             _app_id(),
             sa.Column("commit", sa.String(64), nullable=False),
             sa.Column("slug_path", sa.Text, nullable=False),
             sa.Column("manifest", sa.Text, nullable=False),
             sa.Column("created_at", sa.DateTime, nullable=False)),
    sa.Table("releases", _meta,
             sa.Column("id", sa.Integer, primary_key=True),
             _app_id(),
             sa.Column("version", sa.Integer, nullable=False),
             sa.Column("build_id", sa.Integer, sa.ForeignKey("builds.id"), nullable=False),
             sa.Column("config", sa.LargeBinary, nullable=False),
             sa.Column("description", sa.Text, nullable=False),
             sa.Column("status", sa.String(16), nullable=False),
             sa.Column("created_at", sa.DateTime, nullable=False),
             sa.UniqueConstraint("app_id", "version")),
    sa.Table("deploys", _meta,
             sa.Column("id", sa.Integer, primary_key=True),
             _app_id(),
             sa.Column("description", sa.Text, nullable=False),
             sa.Column("release", sa.Integer, nullable=True),
             sa.Column("status", sa.String(16), nullable=False),
             sa.Column("started_at", sa.DateTime, nullable=False),
             sa.Column("finished_at", sa.DateTime, nullable=True),
             sa.Column("steps", sa.Text, nullable=False)),
    sa.Table("addons", _meta,
             sa.Column("id", sa.Integer, primary_key=True),
             _app_id(),
             sa.Column("kind", sa.String(32), nullable=False),
             sa.Column("credentials", sa.LargeBinary, nullable=False),
             sa.UniqueConstraint("app_id", "kind")),
    sa.Table("config_vars", _meta,
             sa.Column("id", sa.Integer, primary_key=True),
             _app_id(),
             sa.Column("key", sa.String(255), nullable=False),
             sa.Column("value", sa.LargeBinary, nullable=False),
             sa.Column("build_time", sa.Boolean, nullable=False, server_default=sa.false()),
             sa.UniqueConstraint("app_id", "key")),
)


def upgrade() -> None:
    conn = op.get_bind()
    present = set(sa.inspect(conn).get_table_names())
    for table in TABLES:
        if table.name not in present:
            table.create(conn)
            continue
        have = [c["name"] for c in sa.inspect(conn).get_columns(table.name)]
        unknown = set(have) - set(table.c.keys())
        if unknown:
            # Rebuilding would drop them: refuse (the caller rolls everything back) rather than lose data.
            raise RuntimeError(f"table {table.name} has columns no Shipyard made: {', '.join(sorted(unknown))}")
        if len(have) < len(table.c) or (table.kwargs.get("sqlite_autoincrement") and not _autoincrement(conn, table)):
            _rebuild(conn, table, have)


def downgrade() -> None:
    raise NotImplementedError("The baseline is the oldest schema there is: it cannot be undone.")


def _autoincrement(conn: sa.Connection, table: sa.Table) -> bool:
    sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (table.name,)).scalar()
    return "AUTOINCREMENT" in (sql or "").upper()


def _rebuild(conn: sa.Connection, table: sa.Table, have: list[str]) -> None:
    """SQLite's twelve-step table change (foreign keys are off: dropping `apps` must not cascade)."""
    new = table.to_metadata(_meta, name=f"_baseline_{table.name}")
    try:
        new.create(conn)
        columns = ", ".join(f'"{name}"' for name in have)
        conn.exec_driver_sql(f'INSERT INTO "{new.name}" ({columns}) SELECT {columns} FROM "{table.name}"')
        conn.exec_driver_sql(f'DROP TABLE "{table.name}"')
        conn.exec_driver_sql(f'ALTER TABLE "{new.name}" RENAME TO "{table.name}"')
    finally:
        _meta.remove(new)
