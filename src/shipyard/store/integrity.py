"""Is the store sound? SQLite's own checks when it opens, and what to tell the user when it is not."""

from __future__ import annotations

import shlex
import sqlite3
from contextlib import closing
from pathlib import Path

from shipyard.errors import PlatformError
from shipyard.settings import default_data_dir
from shipyard.store.backup_files import newest_backup


class StoreDamaged(PlatformError):
    """The store's file (or a backup of it) is not a sound SQLite database."""


class AppDamaged(PlatformError):
    """One app's data in the store cannot be read; the rest of the store is fine."""


def find_problem(path: Path, *, immutable: bool = False) -> str | None:
    """What SQLite finds wrong with the file (None: sound): its pages (quick_check), then its references.

    `immutable` reads the file without ever writing to it (no WAL recovery, no checkpoint), for a file
    that must stay exactly as it is."""
    uri = f"{path.resolve().as_uri()}?{'immutable=1' if immutable else 'mode=rw'}"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
            results = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if results != ["ok"]:
                return "; ".join(results[:3]) + (f" (and {len(results) - 3} more problems)" if len(results) > 3 else "")
            orphans = conn.execute("PRAGMA foreign_key_check").fetchall()
            if orphans:
                return (f"{len(orphans)} row(s) of table {orphans[0][0]} point at rows of table {orphans[0][2]} "
                        "that do not exist")
    except sqlite3.DatabaseError as exc:  # e.g. "file is not a database", "database disk image is malformed"
        return str(exc)
    return None


def data_dir_flag(data_dir: Path) -> str:
    """What a command needs to name this data directory: nothing for the default one."""
    return "" if data_dir.resolve() == default_data_dir().resolve() else f" --data-dir {shlex.quote(str(data_dir))}"


def restore_command(data_dir: Path) -> str:
    return f"shipyard store restore{data_dir_flag(data_dir)}"


def restore_hint(db: Path, backups: Path) -> str:
    newest = newest_backup(backups)
    if newest is None:
        return (f"There is no backup of it in {backups}. Keep a copy of the file, then rescue what SQLite can "
                f"still read: `sqlite3 {db} .recover | sqlite3 {db}.recovered`, and move {db.name}.recovered "
                f"in its place.")
    return (f"Restore the newest backup, {newest.describe()}: run `{restore_command(db.parent)}` (the damaged "
            f"file is kept aside as {db.name}.damaged-<time>), then start again with `shipyard up`. Changes "
            "made after the backup's time are not in it.")


def ensure_sound(db: Path, backups: Path) -> None:
    """Refuse a damaged store before anything reads it: a half-readable store would start half the apps."""
    if not db.exists():
        return  # a new data directory
    problem = find_problem(db)
    if problem is not None:
        raise StoreDamaged(f"The store {db} is damaged: {problem}.", hint=restore_hint(db, backups))


def app_fix(data_dir: Path) -> str:
    """The fix for one damaged app, for its error, its listing and its log."""
    return ("Stop the platform and put back a backup of the store from before the damage: `shipyard store "
            f"backups{data_dir_flag(data_dir)}` lists them, `{restore_command(data_dir)} [BACKUP]` restores one "
            "(the newest by default).")
