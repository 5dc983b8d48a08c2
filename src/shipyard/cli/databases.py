"""`shipyard addons …` and `shipyard db …`: the PostgreSQL add-on from the command line."""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import Annotated, Optional

import typer
from rich.table import Table

from shipyard.cli.context import client, out
from shipyard.errors import ShipyardError

addons_cli = typer.Typer(help="Add-ons: a managed PostgreSQL database per app.")
db_cli = typer.Typer(help="The app's PostgreSQL database: psql, backups, restore.")


@addons_cli.command("create")
def addons_create(name: str, kind: Annotated[str, typer.Argument(help="postgres")] = "postgres") -> None:
    """Attach an add-on; a running app restarts with its environment (DATABASE_URL, PG*)."""
    if kind != "postgres":
        raise ShipyardError(f"Unknown add-on '{kind}'.", hint="The add-on Shipyard offers is `postgres`.")
    result = client().request("POST", f"/apps/{name}/addons", json={"kind": kind})
    released = f"; restarted as v{result['release']}" if result.get("release") else ""
    out.print(f"Attached PostgreSQL to {name}{released}. DATABASE_URL={result['config']['DATABASE_URL']}")


@addons_cli.command("destroy")
def addons_destroy(name: str, kind: Annotated[str, typer.Argument(help="postgres")] = "postgres",
                   confirm: Annotated[str, typer.Option(help="The app's name, again.")] = "") -> None:
    """Drop the app's database and role (after --confirm); the app restarts without DATABASE_URL."""
    result = client().request("DELETE", f"/apps/{name}/addons/{kind}", params={"confirm": confirm})
    released = f"; restarted as v{result['release']}" if result.get("release") else ""
    out.print(f"Destroyed the PostgreSQL database of {name}{released}.")


@db_cli.command("backup")
def db_backup(name: str) -> None:
    """Back up the app's database now (pg_dump, custom format, in the data directory)."""
    b = client().request("POST", f"/apps/{name}/db/backups")
    out.print(f"Backup {b['id']}  {b['size']} bytes  {format_time(b['created_at'])}")


@db_cli.command("backups")
def db_backups(name: str) -> None:
    """List the app's backups, newest first."""
    rows = client().request("GET", f"/apps/{name}/db/backups")
    table = Table("id", "size", "created", box=None)
    for b in rows:
        table.add_row(b["id"], f"{b['size']} bytes", format_time(b["created_at"]))
    out.print(table if rows else f"{name} has no backups yet: `shipyard db backup {name}`.")


@db_cli.command("restore")
def db_restore(name: str, backup_id: str,
               confirm: Annotated[str, typer.Option(help="The app's name, again.")] = "") -> None:
    """Replace the app's data with a backup's."""
    client().request("POST", f"/apps/{name}/db/restore", json={"backup_id": backup_id, "confirm": confirm})
    out.print(f"Restored {backup_id} into {name}'s database.")


@db_cli.command("psql")
def db_psql(name: str,
            command: Annotated[Optional[list[str]], typer.Option(
                "--command", "-c", help="Run this SQL (or psql meta-command) and exit; may be given again.")] = None,
            file: Annotated[Optional[str], typer.Option("--file", "-f", help="Run the SQL in this file and exit.")] = None,
            ) -> None:
    """psql as the app's role, over verified TLS: interactive from a terminal, or a script.

    `-c 'select 1'`, `-f file.sql` or `< file.sql`: a script stops at its first error and the exit
    status says so (ON_ERROR_STOP), so a failed migration script fails the command that ran it.
    """
    config = client().request("GET", f"/apps/{name}/config", params={"reveal": True})["config"]
    if "PGHOST" not in config:
        raise ShipyardError(f"App '{name}' has no PostgreSQL database.",
                            hint=f"Create one with `shipyard addons create {name} postgres`.")
    env = {**os.environ, **{k: v for k, v in config.items() if k.startswith("PG")}}
    argv = psql_argv(command or [], file, interactive=sys.stdin.isatty())
    try:
        os.execvpe("psql", argv, env)
    except FileNotFoundError:
        raise ShipyardError("psql was not found on this machine.",
                            hint="Install PostgreSQL's client: `apt-get install postgresql-client`.") from None


def psql_argv(commands: list[str], file: str | None, interactive: bool) -> list[str]:
    """psql's arguments: the commands and file as given; a script (anything but a terminal session) stops at
    its first error, as psql otherwise runs on past it and exits 0."""
    argv = ["psql"]
    for sql in commands:
        argv += ["--command", sql]
    if file is not None:
        argv += ["--file", file]
    if commands or file is not None or not interactive:
        argv += ["--set", "ON_ERROR_STOP=1"]
    return argv


def format_time(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
