"""Apps get a release command setting; the formation of apps that already run is written down.

Process types other than `web` used to start one instance each until scaled; from this revision they start
at 0, as on Heroku. So that upgrading never stops a worker that runs today, every app with a live release
gets each of that release's types it has no count for written into its formation at the old default, 1.
Types that appear in later pushes start at 0, as they would for any app.

An app whose formation or manifest cannot be read is left as it is: it is listed as damaged with its fix,
and an upgrade must not fail every app for one.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The default before this revision, for every type but `web` (whose default stays 1) and `release`.
OLD_DEFAULT = 1

_LIVE_TYPES = """
SELECT a.id, a.formation, b.manifest FROM apps a
JOIN releases r ON r.app_id = a.id AND r.version = a.current_release
JOIN builds b ON b.id = r.build_id
"""


def upgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.add_column(sa.Column("release_command", sa.Text, nullable=False, server_default=""))
    conn = op.get_bind()
    for app_id, formation, manifest in conn.exec_driver_sql(_LIVE_TYPES).fetchall():
        pinned = pinned_formation(formation, manifest)
        if pinned is not None:
            conn.exec_driver_sql("UPDATE apps SET formation = ? WHERE id = ?",
                                 (json.dumps(pinned, sort_keys=True), app_id))


def pinned_formation(formation: str | None, manifest: str | None) -> dict[str, int] | None:
    """The formation with the live release's background types at the old default; None: nothing to change."""
    try:
        counts = json.loads(formation or "{}")
        types = json.loads(manifest or "{}").get("process_types") or {}
    except (ValueError, TypeError, AttributeError):
        return None
    if not isinstance(counts, dict) or not isinstance(types, dict):
        return None
    missing = {t: OLD_DEFAULT for t in types if t not in ("web", "release") and t not in counts}
    return {**counts, **missing} if missing else None


def downgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("release_command")
