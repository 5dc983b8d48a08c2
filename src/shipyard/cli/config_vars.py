"""`shipyard config …`: an app's config vars, the environment its processes, runs and builds see."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from shipyard.cli.context import client, out
from shipyard.cli.groups import DefaultCommandGroup
from shipyard.errors import ShipyardError

config_cli = typer.Typer(help="Config vars: the app's environment.", cls=DefaultCommandGroup)


@config_cli.command("show")
def config_show(name: str, reveal: Annotated[bool, typer.Option("--reveal", help="Show passwords.")] = False) -> None:
    """Show an app's config vars (passwords masked unless --reveal)."""
    result = client().request("GET", f"/apps/{name}/config", params={"reveal": reveal})
    if not result["config"]:
        out.print(f"{name} has no config vars.")
    for key, value in result["config"].items():
        out.print(f"{key}={shlex.quote(value)}")


@config_cli.command("set")
def config_set(name: str, pairs: Annotated[list[str], typer.Argument(help="KEY=VALUE …")],
               build_time: Annotated[bool, typer.Option(
                   "--build-time", help="Accepted for compatibility; changes nothing: builds see every config var.")
               ] = False) -> None:
    """Set config vars; a running app restarts with them as a new release, and the next build sees them."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ShipyardError(f"'{pair}' is not KEY=VALUE.", hint="e.g. `shipyard config set todo GREETING=hi`")
        values[key] = value
    result = client().request("PATCH", f"/apps/{name}/config", json={"set": values, "build_time": build_time})
    released = f" and restarted as v{result['release']}" if result.get("release") else ""
    out.print(f"Set {', '.join(values)} on {name}{released}.")


@config_cli.command("unset")
def config_unset(name: str, keys: list[str]) -> None:
    """Remove config vars; a running app restarts without them."""
    result = client().request("PATCH", f"/apps/{name}/config", json={"unset": keys})
    released = f" and restarted as v{result['release']}" if result.get("release") else ""
    out.print(f"Unset {', '.join(keys)} on {name}{released}.")
