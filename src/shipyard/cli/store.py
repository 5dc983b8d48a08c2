"""`shipyard store …`: the platform's own store on this machine (apps, releases, config), its backups and
putting one back. These work on the local data directory, not through the API: they are for a platform that
is stopped, e.g. one that refuses to start because its store is damaged."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from shipyard.cli.context import out, state
from shipyard.errors import AlreadyRunning, ShipyardError
from shipyard.settings import Settings, default_data_dir
from shipyard.store.backup_files import human_time, list_backups
from shipyard.store.integrity import data_dir_flag

store_cli = typer.Typer(help="The platform's store (apps, releases, config): its backups, and restoring one.")

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Data directory of the local platform "
                                                 "(default: $SHIPYARD_DATA_DIR or ~/.local/share/shipyard).")]


def _settings(data_dir: Path | None) -> Settings:
    settings = Settings(data_dir=(data_dir or state.data_dir or default_data_dir()).resolve())
    if not settings.data_dir.is_dir():
        raise ShipyardError(f"There is no Shipyard data directory at {settings.data_dir}.",
                            hint="Name the one `shipyard up` uses with --data-dir (or SHIPYARD_DATA_DIR).")
    return settings


@store_cli.command("backups")
def store_backups(data_dir: DataDir = None) -> None:
    """List the store's backups, newest first: file, time, size."""
    settings = _settings(data_dir)
    folder = settings.store_backups_dir
    backups = list_backups(folder)
    if not backups:
        out.print(f"There are no backups of the store in {folder} yet: `shipyard up` makes one when it starts, "
                  "every hour and when it stops.", markup=False)
        return
    table = Table("file", "time", "size", box=None)
    for backup in backups:
        table.add_row(backup.name, human_time(backup.created), f"{backup.size} bytes")
    out.print(table)
    out.print(f"in {folder}; restore one with `shipyard store restore{data_dir_flag(settings.data_dir)} FILE` "
              "(the platform stopped).", markup=False)


@store_cli.command("restore")
def store_restore(
    backup: Annotated[Optional[str], typer.Argument(help="A file from `shipyard store backups`, or a backup's "
                                                         "path (default: the newest).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Put a backup of the store back in place, with the platform stopped; the store it replaces is kept aside."""
    # Imported here: the platform and Alembic would slow down every other command.
    from shipyard.store.restore import restore_store
    from shipyard.up import acquire_lock

    settings = _settings(data_dir)
    try:
        lock = acquire_lock(settings)  # the lock `shipyard up` holds: no platform may use the store meanwhile
    except AlreadyRunning as exc:
        raise AlreadyRunning(f"{exc.message} Its store cannot be replaced while it runs.",
                             hint="Stop it first (Ctrl-C in its terminal), then run the restore again.") from None
    try:
        done = restore_store(settings.db_file, settings.store_backups_dir, backup)
    finally:
        lock.close()
    if done.kept_aside is not None:
        what = "damaged store" if done.replaced_damaged else "store it replaced"
        out.print(f"Kept the {what} aside as {done.kept_aside} (Shipyard never deletes it).", markup=False)
    out.print(f"Restored {done.backup.describe()} into {settings.db_file}.", markup=False)
    out.print(f"What changed after {human_time(done.backup.created)} (apps created, deploys, config changes) is "
              "not in it.", markup=False)
    out.print(f"`shipyard up{data_dir_flag(settings.data_dir)}` can start the platform again.", markup=False)
