"""The store's backups on disk: names that carry their time (UTC), and the listing, newest first."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

PREFIX = "shipyard-"
SUFFIX = ".db"
_STAMP = "%Y%m%dT%H%M%SZ"  # sorts by time as text, and says it is UTC


def stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(_STAMP)


def backup_name(moment: datetime) -> str:
    return f"{PREFIX}{stamp(moment)}{SUFFIX}"


def human_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class StoreBackup:
    path: Path
    created: datetime
    size: int

    @property
    def name(self) -> str:
        return self.path.name

    def describe(self) -> str:
        return f"{self.name} (made {human_time(self.created)})"


def _parse(path: Path) -> StoreBackup | None:
    try:
        created = datetime.strptime(path.name[len(PREFIX):-len(SUFFIX)], _STAMP).replace(tzinfo=timezone.utc)
        return StoreBackup(path, created, path.stat().st_size)
    except (ValueError, OSError):  # not one of ours, or removed meanwhile
        return None


def list_backups(folder: Path) -> list[StoreBackup]:
    """Only complete backups: one being written has a dot-name until it is checked and renamed."""
    found = (_parse(path) for path in folder.glob(f"{PREFIX}*{SUFFIX}")) if folder.is_dir() else ()
    return sorted((b for b in found if b is not None), key=lambda b: b.created, reverse=True)


def newest_backup(folder: Path) -> StoreBackup | None:
    backups = list_backups(folder)
    return backups[0] if backups else None


def outside_backup(path: Path) -> StoreBackup:
    """A backup the user names by its path (e.g. copied from another machine): its time is the file's."""
    info = path.stat()
    return StoreBackup(path, datetime.fromtimestamp(info.st_mtime, timezone.utc), info.st_size)


def fsync_path(path: Path) -> None:
    """Flush a file, or a folder's entries (a rename is durable only then), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
