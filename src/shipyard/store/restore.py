"""Putting a backup of the store back in place (the platform stopped), keeping the store it replaces.

The order matters for every crash in between: the backup is checked and copied next to the store first;
the old store (with its -wal/-shm files, which belong to it alone) is linked aside under a new name; its
-wal/-shm are removed, since SQLite would replay them onto the restored file; and a rename puts the copy in
place. At every step either the old store or the backup is whole on disk, and the old one is never deleted.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from shipyard.errors import NotFound, PlatformError
from shipyard.store.backup_files import StoreBackup, fsync_path, list_backups, outside_backup, stamp
from shipyard.store.integrity import StoreDamaged, find_problem
from shipyard.store.schema import known_revisions

_COMPANIONS = ("-wal", "-shm")


@dataclass(frozen=True)
class Restored:
    backup: StoreBackup
    kept_aside: Path | None  # the store it replaced; None when there was none
    replaced_damaged: bool


def choose_backup(folder: Path, choice: str | None) -> StoreBackup:
    """The newest backup, one named as `shipyard store backups` lists it, or a backup file's path."""
    backups = list_backups(folder)
    if choice is None:
        if not backups:
            raise NotFound(f"There is no backup of the store in {folder}.",
                           hint="Name a backup file to restore: `shipyard store restore PATH`.")
        return backups[0]
    for backup in backups:
        if choice == backup.name:
            return backup
    path = Path(choice).expanduser()
    if path.is_file():
        return outside_backup(path.resolve())
    raise NotFound(f"There is no backup '{choice}' in {folder}.",
                   hint="`shipyard store backups` lists them; give one of their names, or a backup file's path.")


def _shipyard_problem(path: Path) -> str | None:
    """Beyond SQLite's checks: is it a store at all, and one this Shipyard can read?"""
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "apps" not in tables:
            return "it is not a Shipyard store (it has no apps table)"
        if "alembic_version" in tables:
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            if revision and revision[0] not in known_revisions():
                return f"it was made by a newer Shipyard (schema revision {revision[0]}); upgrade Shipyard first"
    return None


def check_backup(path: Path) -> None:
    problem = find_problem(path) or _shipyard_problem(path)
    if problem is not None:
        raise StoreDamaged(f"The backup {path} cannot be restored: {problem}.",
                           hint="Pick another one from `shipyard store backups`: `shipyard store restore NAME`.")


def _copy_private(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)  # a copy a crash left behind
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
        shutil.copyfileobj(src, dst)
        dst.flush()
        os.fsync(dst.fileno())


def _set_aside(db: Path, now: datetime) -> tuple[Path, bool]:
    damaged = find_problem(db, immutable=True) is not None  # read without writing: the file stays as it was
    aside = db.with_name(f"{db.name}.{'damaged' if damaged else 'replaced'}-{stamp(now)}")
    for suffix in ("", *_COMPANIONS):
        part = Path(f"{db}{suffix}")
        if part.exists():
            os.link(part, f"{aside}{suffix}")
    for suffix in _COMPANIONS:
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return aside, damaged


def restore_store(db: Path, folder: Path, choice: str | None = None, now: datetime | None = None) -> Restored:
    """Replace the store with a backup; the caller holds the data directory's lock (no platform runs)."""
    backup = choose_backup(folder, choice)
    check_backup(backup.path)
    incoming = db.with_name(f".{db.name}.restoring")
    try:
        _copy_private(backup.path, incoming)
        check_backup(incoming)
        aside, damaged = _set_aside(db, now or datetime.now(timezone.utc)) if db.exists() else (None, False)
        os.replace(incoming, db)
        fsync_path(db.parent)
    except OSError as exc:
        raise PlatformError(f"Could not restore {backup.name} into {db}: {exc}.",
                            hint="The store and the backup are both still on disk; fix the cause (e.g. free some "
                                 "space) and run the restore again.") from None
    finally:
        incoming.unlink(missing_ok=True)
    return Restored(backup, aside, damaged)
