"""The store's schema is Alembic's: every open brings it to the newest revision this Shipyard knows.

Alembic runs programmatically from the scripts inside the package, so users need no alembic.ini and a
data directory from any earlier Shipyard upgrades in place when the new one starts.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from shipyard.errors import PlatformError
from shipyard.store.integrity import restore_command

SCRIPTS = "shipyard.store:migrations"  # a package resource: found wherever Shipyard is installed


class StoreTooNew(PlatformError):
    """The store was written by a newer Shipyard, whose schema this one cannot read."""


class StoreUpgradeFailed(PlatformError):
    pass


def _config(scripts: str, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", scripts)
    config.attributes["connection"] = connection
    return config


def head_revision(scripts: str = SCRIPTS) -> str:
    head = ScriptDirectory.from_config(_config(scripts)).get_current_head()
    assert head is not None
    return head


def known_revisions(scripts: str = SCRIPTS) -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(_config(scripts)).walk_revisions()}


def stored_revision(conn: Connection) -> str | None:
    """The store's revision; None for a new store or one made before migrations existed."""
    return MigrationContext.configure(conn).get_current_revision()


def _migration_engine(db_path: Path) -> Engine:
    # pysqlite would commit before every CREATE/ALTER on its own; with BEGIN emitted by us, all pending
    # revisions run in one transaction. Foreign keys go off before it begins (a no-op inside one), as
    # rebuilding a table that others reference requires.
    engine = create_engine(f"sqlite:///{db_path}", poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA busy_timeout=5000")
        dbapi_conn.execute("PRAGMA foreign_keys=OFF")

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def upgrade_schema(db_path: Path, scripts: str = SCRIPTS) -> None:
    """Bring the store at db_path (new, unversioned or older) to the head revision, all or nothing."""
    head, known = head_revision(scripts), known_revisions(scripts)
    engine = _migration_engine(db_path)
    try:
        with engine.begin() as conn:
            current = stored_revision(conn)
            if current is not None and current not in known:
                raise StoreTooNew(
                    f"The store {db_path} was written by a newer Shipyard (schema revision {current}); this one "
                    f"knows revisions up to {head}.",
                    hint="Upgrade Shipyard to the version that last ran on this data directory (or newer), then "
                         "start it again. The store was left as it was.")
            if current == head:
                return
            command.upgrade(_config(scripts, conn), "head")
            orphans = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if orphans:
                raise StoreUpgradeFailed(
                    f"Upgrading the store {db_path} would leave {len(orphans)} row(s) of table {orphans[0][0]} "
                    "pointing at rows that do not exist; nothing was changed.",
                    hint=f"Restore a backup of the store with `{restore_command(db_path.parent)}`, or report this "
                         "as a bug.")
    except SQLAlchemyError as exc:
        raise StoreUpgradeFailed(f"The store {db_path} could not be upgraded to this Shipyard's schema "
                                 f"(revision {head}): {getattr(exc, 'orig', None) or exc}; nothing was changed.",
                                 hint=f"Restore a backup of the store with `{restore_command(db_path.parent)}`, or "
                                      "report this as a bug.") from None
    except RuntimeError as exc:  # a revision's own refusal, e.g. a column no Shipyard made
        raise StoreUpgradeFailed(f"The store {db_path} could not be upgraded: {exc}; nothing was changed.",
                                 hint="Move that column's data elsewhere and drop it, or report this as a "
                                      "bug.") from None
    finally:
        engine.dispose()


def new_revision(message: str) -> None:
    """For developers: write a new, empty revision file into the package's versions folder."""
    command.revision(_config(SCRIPTS), message=message)
