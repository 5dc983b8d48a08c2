"""The store's integrity check, its online backups and `shipyard store restore`, on real SQLite files."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from shipyard.errors import NotFound
from shipyard.settings import Settings
from shipyard.store.backup_files import list_backups
from shipyard.store.backups import StoreBackupFailed, prune_backups, scheduled_store_backups, take_backup
from shipyard.store.metrics import Bucket
from shipyard.store.integrity import StoreDamaged, find_problem
from shipyard.store.restore import restore_store
from shipyard.store.secrets import Cipher
from shipyard.store.store import Store

T1 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=timezone.utc)
T2 = datetime(2026, 11, 29, 11, 30, 0, tzinfo=timezone.utc)
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


class Platform:
    """A data directory as `shipyard up` lays it out: the store, its key, its backups folder."""

    def __init__(self, data_dir: Path, apps: int = 3) -> None:
        data_dir.mkdir(exist_ok=True)
        self.settings = Settings(data_dir=data_dir)
        self.db, self.backups = self.settings.db_file, self.settings.store_backups_dir
        self.cipher = Cipher(Fernet.generate_key())
        store = self.open()
        for n in range(apps):
            store.create_app(f"app-{n}")
            store.update_config(f"app-{n}", {f"VAR_{i}": "x" * 300 for i in range(10)}, [])
        store.close()

    def open(self) -> Store:
        return Store(self.db, self.cipher, self.backups)

    def app_names(self, db: Path | None = None) -> list[str]:
        with closing(sqlite3.connect(db or self.db)) as conn:
            return [row[0] for row in conn.execute("SELECT name FROM apps ORDER BY name")]


def damage_pages(path: Path) -> None:
    """Overwrite the pages in the middle of the file with garbage, as a failing disk would."""
    data = bytearray(path.read_bytes())
    pages = len(data) // 4096
    assert pages >= 6, pages
    for page in range(2, pages - 1):
        data[page * 4096:(page + 1) * 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))


# Integrity at open

def test_a_sound_store_passes_and_garbage_does_not(tmp_path: Path) -> None:
    platform = Platform(tmp_path / "data")
    assert find_problem(platform.db) is None
    damage_pages(platform.db)
    assert find_problem(platform.db) is not None
    text = tmp_path / "notes.db"
    text.write_text("not a database at all, just some words " * 200)
    assert "not a database" in (find_problem(text) or "")


def test_a_damaged_store_is_refused_at_open_naming_the_file_and_the_newest_backup(tmp_path: Path) -> None:
    platform = Platform(tmp_path / "data")
    take_backup(platform.db, platform.backups, T1 - (T2 - T1))
    take_backup(platform.db, platform.backups, T1)
    damage_pages(platform.db)
    with pytest.raises(StoreDamaged) as raised:
        platform.open()
    error = raised.value
    assert error.status_code == 500 and f"The store {platform.db} is damaged" in error.message
    hint = error.hint or ""
    assert "shipyard-20261129T100000Z.db (made 2026-11-29 10:00:00 UTC)" in hint
    assert f"shipyard store restore --data-dir {platform.settings.data_dir}" in hint and "shipyard up" in hint


def test_a_file_that_is_no_database_is_refused_and_without_backups_the_hint_says_how_to_rescue(tmp_path: Path) -> None:
    platform = Platform(tmp_path / "data")
    platform.db.write_bytes(os.urandom(64 * 1024))
    with pytest.raises(StoreDamaged) as raised:
        platform.open()
    assert "not a database" in raised.value.message and ".recover" in (raised.value.hint or "")


# Backups

def test_a_backup_is_a_checked_private_self_contained_copy(tmp_path: Path) -> None:
    platform = Platform(tmp_path / "data")
    backup = take_backup(platform.db, platform.backups, T1)
    assert backup.path == platform.backups / "shipyard-20261129T100000Z.db" and backup.created == T1
    assert stat.S_IMODE(backup.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(platform.backups.stat().st_mode) == 0o700
    assert sorted(p.name for p in platform.backups.iterdir()) == [backup.name]  # no -wal, no partial file
    with closing(sqlite3.connect(backup.path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert platform.app_names(backup.path) == ["app-0", "app-1", "app-2"]


def test_a_backup_leaves_the_request_metrics_out(tmp_path: Path) -> None:
    platform = Platform(tmp_path / "data")
    store = platform.open()
    store.record_minutes({"app-0": Bucket(start=1_800_000_000, requests=5, by_class=(0, 5, 0, 0, 0))})
    store.close()
    backup = take_backup(platform.db, platform.backups, T1)
    with closing(sqlite3.connect(backup.path)) as conn:
        assert conn.execute("SELECT count(*) FROM metrics").fetchone() == (0,)
    with closing(sqlite3.connect(platform.db)) as conn:
        assert conn.execute("SELECT count(*) FROM metrics").fetchone() == (1,)  # the store keeps them


def test_only_the_newest_backups_are_kept_and_strangers_are_ignored(tmp_path: Path) -> None:
    platform = Platform(tmp_path / "data", apps=1)
    made = [take_backup(platform.db, platform.backups, T1.replace(minute=m)) for m in range(5)]
    (platform.backups / "notes.txt").write_text("mine")
    (platform.backups / "shipyard-yesterday.db").write_text("mine too")
    assert [b.name for b in list_backups(platform.backups)] == [b.name for b in reversed(made)]
    deleted = prune_backups(platform.backups, 2)
    assert [b.name for b in deleted] == [b.name for b in reversed(made[:3])]
    assert sorted(p.name for p in platform.backups.iterdir()) == sorted(
        [made[3].name, made[4].name, "notes.txt", "shipyard-yesterday.db"])


def mount_tmpfs(folder: Path, size: str) -> None:
    folder.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=700", "tmpfs", str(folder)], check=True)


@root_only
def test_a_full_disk_fails_the_backup_cleanly_and_keeps_the_older_ones(tmp_path: Path) -> None:
    platform = Platform(tmp_path / "data", apps=1)
    mount_tmpfs(platform.backups, "256k")
    try:
        first = take_backup(platform.db, platform.backups, T1)
        store = platform.open()
        for n in range(40):  # the store outgrows what is left on the backups' disk
            store.update_config("app-0", {f"BIG_{n}": "y" * 20000}, [])
        store.close()
        with pytest.raises(StoreBackupFailed) as raised:
            take_backup(platform.db, platform.backups, T2)
        assert "full" in raised.value.message and "Free some space" in (raised.value.hint or "")
        assert [p.name for p in platform.backups.iterdir()] == [first.name]  # the partial file is gone
    finally:
        subprocess.run(["umount", str(platform.backups)], check=True)


async def _run_schedule(platform: Platform, interval: float, during: float, reports: list[str]) -> None:
    task = asyncio.create_task(scheduled_store_backups(platform.db, platform.backups, interval, 3, reports.append))
    await asyncio.sleep(during)
    assert not task.done()  # a failed backup never ends the schedule
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_scheduled_backups_one_at_start_then_periodically_and_a_last_one_at_stop(tmp_path: Path) -> None:
    platform = Platform(tmp_path / "data", apps=1)
    reports: list[str] = []

    async def scenario() -> None:
        task = asyncio.create_task(scheduled_store_backups(platform.db, platform.backups, 1.0, 3, reports.append))
        await asyncio.sleep(0.5)
        assert len(list_backups(platform.backups)) == 1  # at start
        await asyncio.sleep(1.0)
        assert len(list_backups(platform.backups)) == 2  # one interval later
        store = platform.open()
        store.create_app("latest")
        store.close()
        await asyncio.sleep(1.0)  # a new second: the last backup gets a name of its own
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    backups = list_backups(platform.backups)
    assert len(backups) == 3 and reports == []
    assert "latest" in platform.app_names(backups[0].path)


@root_only
def test_scheduled_backups_on_a_full_disk_report_and_go_on(tmp_path: Path) -> None:
    platform = Platform(tmp_path / "data", apps=6)
    mount_tmpfs(platform.backups, "16k")
    try:
        reports: list[str] = []
        asyncio.run(_run_schedule(platform, 0.2, 0.7, reports))
        assert len(reports) >= 3 and all("Could not back up the store" in r for r in reports)
        assert list(platform.backups.iterdir()) == []
    finally:
        subprocess.run(["umount", str(platform.backups)], check=True)


# Restore

def test_restore_puts_the_newest_backup_back_and_keeps_the_damaged_store_aside(tmp_path: Path) -> None:
    platform = Platform(tmp_path / "data")
    take_backup(platform.db, platform.backups, T1 - (T2 - T1))
    newest = take_backup(platform.db, platform.backups, T1)
    damage_pages(platform.db)
    Path(f"{platform.db}-wal").write_bytes(b"frames of the damaged store")  # never to be replayed on the backup
    damaged = platform.db.read_bytes()

    done = restore_store(platform.db, platform.backups, None, T2)

    assert done.backup.name == newest.name and done.replaced_damaged
    aside = platform.settings.data_dir / "shipyard.db.damaged-20261129T113000Z"
    assert done.kept_aside == aside and aside.read_bytes() == damaged
    assert Path(f"{aside}-wal").read_bytes() == b"frames of the damaged store"
    assert not Path(f"{platform.db}-wal").exists()
    assert stat.S_IMODE(platform.db.stat().st_mode) == 0o600
    store = platform.open()
    assert [a.name for a in store.list_apps()] == ["app-0", "app-1", "app-2"]
    assert store.get_config("app-1")["VAR_3"] == "x" * 300
    store.close()


def test_restore_checks_the_backup_first_and_then_changes_nothing(tmp_path: Path) -> None:
    platform = Platform(tmp_path / "data")
    bad = take_backup(platform.db, platform.backups, T1)
    damage_pages(bad.path)
    before = platform.db.read_bytes()
    with pytest.raises(StoreDamaged) as raised:
        restore_store(platform.db, platform.backups, None, T2)
    assert bad.name in raised.value.message and "cannot be restored" in raised.value.message
    stranger = tmp_path / "stranger.db"
    with closing(sqlite3.connect(stranger)) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(StoreDamaged, match="not a Shipyard store"):
        restore_store(platform.db, platform.backups, str(stranger), T2)
    with pytest.raises(NotFound, match="no backup 'nope.db'"):
        restore_store(platform.db, platform.backups, "nope.db", T2)
    assert platform.db.read_bytes() == before
    assert sorted(p.name for p in platform.settings.data_dir.iterdir()) == ["backups", "shipyard.db"]


def test_restore_of_a_named_backup_into_a_sound_store_keeps_it_as_replaced(tmp_path: Path) -> None:
    platform = Platform(tmp_path / "data", apps=1)
    older = take_backup(platform.db, platform.backups, T1)
    store = platform.open()
    store.create_app("newer")
    store.close()
    take_backup(platform.db, platform.backups, T2)
    done = restore_store(platform.db, platform.backups, older.name, T2)
    assert done.backup.name == older.name and not done.replaced_damaged
    assert done.kept_aside is not None and done.kept_aside.name == "shipyard.db.replaced-20261129T113000Z"
    assert platform.app_names() == ["app-0"] and "newer" in platform.app_names(done.kept_aside)


# The command line

def shipyard(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHIPYARD_DATA_DIR": str(data_dir), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "shipyard", *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_store_commands_list_backups_refuse_a_running_platform_then_restore(tmp_path: Path) -> None:
    from shipyard.up import acquire_lock

    platform = Platform(tmp_path / "data")
    listed = shipyard(platform.settings.data_dir, "store", "backups")
    assert listed.returncode == 0 and "no backups of the store" in listed.stdout
    take_backup(platform.db, platform.backups, T1)
    listed = shipyard(platform.settings.data_dir, "store", "backups")
    assert "shipyard-20261129T100000Z.db" in listed.stdout and "2026-11-29 10:00:00 UTC" in listed.stdout
    damage_pages(platform.db)

    lock = acquire_lock(platform.settings)  # as `shipyard up` holds it
    try:
        refused = shipyard(platform.settings.data_dir, "store", "restore")
    finally:
        lock.close()
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "already running" in refused.stderr and "Stop it first" in refused.stderr
    assert not list(platform.settings.data_dir.glob("shipyard.db.damaged-*"))

    restored = shipyard(platform.settings.data_dir, "store", "restore")
    assert restored.returncode == 0, restored.stderr
    assert "Kept the damaged store aside as" in restored.stdout and "shipyard-20261129T100000Z.db" in restored.stdout
    assert "shipyard up" in restored.stdout
    assert len(list(platform.settings.data_dir.glob("shipyard.db.damaged-*"))) == 1
    assert platform.app_names() == ["app-0", "app-1", "app-2"]
