"""Online backups of the store with SQLite's backup API: checked, written atomically, private, the newest N kept.

A backup is made while the platform serves (readers never block the WAL store's writers), into a dot-named
file that only becomes a backup once SQLite found it sound and it was renamed into place: a crash or a full
disk leaves no half-written backup among the good ones.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

from shipyard.errors import PlatformError
from shipyard.store.backup_files import StoreBackup, backup_name, fsync_path, list_backups
from shipyard.store.integrity import find_problem


class StoreBackupFailed(PlatformError):
    pass


def _remove_partials(folder: Path) -> None:
    """What a backup cut short (kill -9, full disk) left: its dot-named file and SQLite's journal of it."""
    for leftover in folder.glob(".*.partial*"):
        leftover.unlink(missing_ok=True)


def take_backup(db: Path, folder: Path, now: datetime | None = None) -> StoreBackup:
    """Copy the store into folder as shipyard-<UTC time>.db (mode 0600), checked before it counts."""
    if not db.exists():
        raise StoreBackupFailed(f"There is no store at {db} to back up.")
    moment = now or datetime.now(timezone.utc)
    target = folder / backup_name(moment)
    partial = folder / f".{target.name}.partial"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _remove_partials(folder)
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))  # private before SQLite writes
        with closing(sqlite3.connect(db, timeout=5)) as source, closing(sqlite3.connect(partial)) as copy:
            source.backup(copy)
            # One self-contained file: a copy of the WAL store would otherwise need -wal/-shm files beside it.
            copy.execute("PRAGMA journal_mode=DELETE")
            # Request figures are not state to restore: without them a backup stays the size of the apps' records
            # (a week of metrics for a hundred busy apps is tens of MB, times every backup kept).
            if copy.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'metrics'").fetchone():
                copy.execute("DELETE FROM metrics")
                copy.commit()
                copy.execute("VACUUM")
        problem = find_problem(partial)
        if problem is not None:
            raise StoreBackupFailed(f"The backup of the store failed its check and was not kept: {problem}.",
                                    hint="The store itself may be damaged: run `shipyard store backups` and keep the "
                                         "older ones safe.")
        fsync_path(partial)
        os.replace(partial, target)
        fsync_path(folder)
    except (sqlite3.Error, OSError) as exc:
        raise StoreBackupFailed(f"Could not back up the store into {folder}: {exc}.",
                                hint="Free some space on that disk (`df -h`); the older backups are kept, and the "
                                     "next one is tried on schedule.") from None
    finally:
        if folder.is_dir():
            _remove_partials(folder)
    return StoreBackup(target, moment.replace(microsecond=0), target.stat().st_size)


def prune_backups(folder: Path, keep: int) -> list[StoreBackup]:
    """Delete all but the newest `keep` backups; returns those deleted."""
    old = list_backups(folder)[keep:]
    for backup in old:
        backup.path.unlink(missing_ok=True)
    return old


def backup_and_prune(db: Path, folder: Path, keep: int) -> StoreBackup:
    backup = take_backup(db, folder)
    prune_backups(folder, keep)
    return backup


async def scheduled_store_backups(db: Path, folder: Path, interval: float, keep: int,
                                  report: Callable[[str], None]) -> None:
    """A backup now, one every `interval` seconds, and a last one when cancelled (the platform stops), so a
    store damaged while the platform is down loses nothing. A failed backup is reported, never fatal."""

    async def backup_now() -> None:
        try:
            await asyncio.to_thread(backup_and_prune, db, folder, keep)
        except PlatformError as exc:
            report(f"Warning: {exc.message}" + (f" {exc.hint}" if exc.hint else ""))

    while True:
        await backup_now()
        try:
            await asyncio.sleep(interval)
        except asyncio.CancelledError:
            # Cancelled while a backup runs, no second one starts: the running one finishes in its thread.
            await backup_now()
            raise
