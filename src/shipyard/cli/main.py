"""The `shipyard` command line (Typer + Rich): the root command, its global option, the commands about the
platform itself (up, doctor), and the entry point. The other commands live in the modules added here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from shipyard.cli.apps import apps_cli
from shipyard.cli.config_vars import config_cli
from shipyard.cli.context import client, err, out, state
from shipyard.cli.credential_helper import git_auth
from shipyard.cli.databases import addons_cli, db_cli
from shipyard.cli.domains import ca, domains_cli
from shipyard.cli.processes import processes_cli
from shipyard.cli.store import store_cli
from shipyard.errors import ShipyardError
from shipyard.settings import DEFAULT_API_PORT, DEFAULT_EDGE_PORT, DEFAULT_HTTPS_PORT, Settings, default_data_dir

app = typer.Typer(help="Shipyard: git push your Python web app to your own machine.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
# `shipyard --help` lists commands in the order they are added: the root's own (up, doctor) first, then these.
app.add_typer(processes_cli)
app.add_typer(apps_cli, name="apps")
app.add_typer(config_cli, name="config")
app.add_typer(addons_cli, name="addons")
app.add_typer(db_cli, name="db")
app.add_typer(store_cli, name="store")
app.add_typer(domains_cli, name="domains")
app.command("ca")(ca)
app.command("git-auth")(git_auth)

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Data directory of a local platform "
                                                 "(default: $SHIPYARD_DATA_DIR or ~/.local/share/shipyard).")]


@app.callback()
def _root(data_dir: DataDir = None) -> None:
    state.data_dir = data_dir


@app.command()
def up(
    data_dir: DataDir = None,
    api_port: Annotated[int, typer.Option(help="Port of the API and git server.")] = DEFAULT_API_PORT,
    edge_port: Annotated[int, typer.Option(help="Port apps are served on.")] = DEFAULT_EDGE_PORT,
    https_port: Annotated[int, typer.Option(help="Port apps are served on over HTTPS (0: none).")] = DEFAULT_HTTPS_PORT,
    api_host: Annotated[str, typer.Option(help="Address the API listens on.")] = "127.0.0.1",
    edge_host: Annotated[str, typer.Option(help="Address the edge listens on (0.0.0.0 for all).")] = "127.0.0.1",
    base_domain: Annotated[str, typer.Option(help="Apps are served at <app>.<base-domain>.")] = "localhost",
    backend: Annotated[str | None, typer.Option(
        help="Where apps run: local (this machine) or kubernetes (the cluster KUBECONFIG names; see the README's "
             "\"Running on Kubernetes\"). Default: SHIPYARD_BACKEND, else local.")] = None,
) -> None:
    """Start the platform in the foreground (API, git, edge, apps). Ctrl-C stops it all."""
    from shipyard.up import run_platform

    chosen = {"backend": backend} if backend else {}
    settings = Settings(data_dir=(data_dir or state.data_dir or default_data_dir()).resolve(), api_host=api_host,
                        api_port=api_port, edge_host=edge_host, edge_port=edge_port, https_port=https_port,
                        base_domain=base_domain, **chosen)
    run_platform(settings, lambda text: out.print(text))


@app.command()
def doctor() -> None:
    """Which isolation layers protect apps (and the platform) on this machine, and which are degraded."""
    found = client().request("GET", "/doctor")
    # The disk is room, not protection (ok, or a warning); speed-ups are optional (on or off), never a failure.
    kinds = {"isolation": ("[green]active[/green]  ", "[red]degraded[/red]"),
             "resource": ("[green]ok[/green]      ", "[yellow]warning[/yellow] "),
             "speed": ("[green]on[/green]      ", "[dim]off[/dim]       ")}
    for kind in kinds:
        for layer in (layer for layer in found if layer.get("kind", "isolation") == kind):
            mark = kinds[kind][0] if layer["active"] else kinds[kind][1]
            out.print(f"{mark} [bold]{layer['name']}[/bold]: {escape(layer['detail'])}")
    degraded = [layer["name"] for layer in found if layer.get("kind", "isolation") == "isolation" and not layer["active"]]
    if degraded:
        out.print(f"\n{len(degraded)} layer(s) degraded: apps on this machine are less isolated than the "
                  "README's security model says.")
    if degraded or any(layer.get("kind") == "resource" and not layer["active"] for layer in found):
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except ShipyardError as exc:
        err.print(f"[red]Error:[/red] {exc.message}")
        if exc.hint:
            err.print(exc.hint)
        sys.exit(1)
