"""The `shipyard` command line (Typer + Rich)."""

from __future__ import annotations

import json as json_module
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table
from typer.core import TyperGroup

from shipyard.cli.console import attach
from shipyard.cli.context import client, err, out, state
from shipyard.cli.databases import addons_cli, db_cli
from shipyard.cli.render import duration
from shipyard.cli.store import store_cli
from shipyard.errors import ShipyardError
from shipyard.settings import DEFAULT_API_PORT, DEFAULT_EDGE_PORT, Settings, default_data_dir

class DefaultCommandGroup(TyperGroup):
    """`shipyard config todo` means `shipyard config show todo`: an unknown word is the app name."""

    default_command = "show"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(help="Shipyard: git push your Python web app to your own machine.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
apps_cli = typer.Typer(help="Create, list, inspect and destroy apps.", cls=DefaultCommandGroup)
config_cli = typer.Typer(help="Config vars: the app's environment.", cls=DefaultCommandGroup)
app.add_typer(apps_cli, name="apps")
app.add_typer(config_cli, name="config")
app.add_typer(addons_cli, name="addons")
app.add_typer(db_cli, name="db")
app.add_typer(store_cli, name="store")

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Data directory of a local platform "
                                                 "(default: $SHIPYARD_DATA_DIR or ~/.local/share/shipyard).")]


@app.callback()
def _root(data_dir: DataDir = None) -> None:
    state.data_dir = data_dir


# Platform

@app.command()
def up(
    data_dir: DataDir = None,
    api_port: Annotated[int, typer.Option(help="Port of the API and git server.")] = DEFAULT_API_PORT,
    edge_port: Annotated[int, typer.Option(help="Port apps are served on.")] = DEFAULT_EDGE_PORT,
    api_host: Annotated[str, typer.Option(help="Address the API listens on.")] = "127.0.0.1",
    edge_host: Annotated[str, typer.Option(help="Address the edge listens on (0.0.0.0 for all).")] = "127.0.0.1",
    base_domain: Annotated[str, typer.Option(help="Apps are served at <app>.<base-domain>.")] = "localhost",
) -> None:
    """Start the platform in the foreground (API, git, edge, apps). Ctrl-C stops it all."""
    from shipyard.up import run_platform

    settings = Settings(data_dir=(data_dir or state.data_dir or default_data_dir()).resolve(), api_host=api_host,
                        api_port=api_port, edge_host=edge_host, edge_port=edge_port, base_domain=base_domain)
    run_platform(settings, lambda text: out.print(text))


@app.command()
def doctor() -> None:
    """Which isolation layers protect apps (and the platform) on this machine, and which are degraded."""
    layers = client().request("GET", "/doctor")
    # The data directory's disk is no isolation layer: room, not protection (ok, or a warning).
    disk = [layer for layer in layers if layer["name"] == "disk"]
    layers = [layer for layer in layers if layer["name"] != "disk"]
    for layer in layers:
        mark = "[green]active[/green]  " if layer["active"] else "[red]degraded[/red]"
        out.print(f"{mark} [bold]{layer['name']}[/bold]: {layer['detail']}")
    for layer in disk:
        mark = "[green]ok[/green]      " if layer["active"] else "[yellow]warning[/yellow] "
        out.print(f"{mark} [bold]disk[/bold]: {layer['detail']}")
    degraded = [layer["name"] for layer in layers if not layer["active"]]
    if degraded:
        out.print(f"\n{len(degraded)} layer(s) degraded: apps on this machine are less isolated than the "
                  "README's security model says.")
    if degraded or any(not layer["active"] for layer in disk):
        raise typer.Exit(1)


# Apps

@apps_cli.command("list")
def apps_list() -> None:
    """List apps: name, release, state, URL."""
    rows = client().request("GET", "/apps")
    if not rows:
        out.print("No apps yet. Create one with `shipyard apps create NAME`.")
        return
    table = Table("name", "release", "state", "url", box=None)
    for a in rows:
        table.add_row(a["name"], f"v{a['release']}" if a["release"] else "-", a["state"], a["url"])
    out.print(table)
    for a in rows:
        if a.get("damage"):
            out.print(f"\n{a['name']} is damaged: {a['damage']}", markup=False)


@apps_cli.callback(invoke_without_command=True)
def _apps(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        apps_list()


@apps_cli.command("create")
def apps_create(
    name: str,
    branch: Annotated[str, typer.Option(help="The branch whose pushes deploy.")] = "main",
    boot_timeout: Annotated[int, typer.Option(help="Seconds a release gets to listen on $PORT.")] = 240,
    postgres: Annotated[bool, typer.Option("--postgres", help="Give it a PostgreSQL database.")] = False,
) -> None:
    """Create an app: prints its git remote and URL."""
    c = client()
    created = c.request("POST", "/apps", json={"name": name, "branch": branch, "boot_timeout": boot_timeout})
    if postgres:
        c.request("POST", f"/apps/{name}/addons", json={"kind": "postgres"})
        out.print(f"Attached a PostgreSQL database to {name}: its DATABASE_URL is in `shipyard config {name}`.")
    helper = install_credential_helper(c.target.api_url)
    out.print(f"Created [bold]{name}[/bold]\n  URL:        {created['url']}\n  Git remote: {created['git_url']}\n")
    out.print(f"Deploy it:\n  git remote add shipyard {created['git_url']}\n  git push shipyard {branch}")
    if helper:
        out.print(f"\n(git gets the platform token from a credential helper set up in {helper})")


@apps_cli.command("info")
def apps_info(name: str) -> None:
    """Show an app, its release and its processes."""
    a = client().request("GET", f"/apps/{name}")
    out.print(f"[bold]{a['name']}[/bold]  release {('v' + str(a['release'])) if a['release'] else '-'}  {a['state']}")
    out.print(f"  URL:          {a['url']}\n  Git remote:   {a['git_url']}\n  Branch:       {a['branch']}\n"
              f"  Boot timeout: {a['boot_timeout']} s\n  Size:         {a.get('size', 'small')}")
    for label, key in (("Start command", "start_command"), ("Build command", "build_command"),
                       ("Release command", "release_command"), ("Fixed port", "port"), ("Health path", "health_path")):
        if a.get(key):
            out.print(f"  {label + ':':<13} {a[key]}", markup=False)
    if a.get("formation"):
        out.print("  Formation:    " + " ".join(f"{k}={v}" for k, v in a["formation"].items()))
    for i in a["instances"]:
        code = f" (exit {i['exit_code']})" if i["state"] == "crashed" else ""
        out.print(f"  {i['name']}: {i['state']}{code}  v{i['release']}  port {i['port']}  restarts {i['restarts']}")


@apps_cli.command("set")
def apps_set(
    name: str,
    branch: Annotated[Optional[str], typer.Option(help="The branch whose pushes deploy.")] = None,
    boot_timeout: Annotated[Optional[int], typer.Option(help="Seconds a release gets to listen on $PORT.")] = None,
    start_command: Annotated[Optional[str], typer.Option(help="Command of the web process (\"\" = detect).")] = None,
    build_command: Annotated[Optional[str], typer.Option(help="Run after installing dependencies.")] = None,
    release_command: Annotated[Optional[str], typer.Option(help="Run before each release goes live, e.g. "
                                                           "migrations; wins over the Procfile's release: "
                                                           "(\"\" = the Procfile's).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Fixed port for apps that ignore $PORT (0 = none).")] = None,
    health_path: Annotated[Optional[str], typer.Option(help="Path that must answer < 500 before going live.")] = None,
    size: Annotated[Optional[str], typer.Option(help="Instance size: small (512 MB), medium (1 GB), large (2 GB); "
                                                "running instances are replaced.")] = None,
) -> None:
    """Change an app's settings; the start, build and release commands apply from the next push, a size at once."""
    client().request("PATCH", f"/apps/{name}", json={"branch": branch, "boot_timeout": boot_timeout,
                                                      "start_command": start_command,
                                                      "build_command": build_command,
                                                      "release_command": release_command, "port": port,
                                                      "health_path": health_path, "size": size})
    out.print(f"Updated {name}." + (f" Its instances now run as {size}." if size else ""))


@apps_cli.command("destroy")
def apps_destroy(name: str, confirm: Annotated[str, typer.Option(help="The app's name, again.")] = "") -> None:
    """Stop an app and delete its code, releases and logs."""
    if confirm != name:
        raise ShipyardError(f"Destroying '{name}' deletes its code, releases and logs.",
                            hint=f"Run `shipyard apps destroy {name} --confirm {name}`.")
    result = client().request("DELETE", f"/apps/{name}", params={"confirm": confirm})
    out.print(f"Destroyed {name}.")
    if result and result.get("final_backup"):
        out.print(f"Its database was dropped after a final backup: {result['final_backup']}")


# Config

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


# Releases and logs

@app.command()
def rollback(name: str,
             version: Annotated[Optional[str], typer.Argument(
                 help="The release to go back to, e.g. v6 (default: the one before the live release)")] = None,
             skip_release_phase: Annotated[bool, typer.Option(
                 "--skip-release-phase", help="Don't run the release's release command (e.g. migrations).")] = False,
             ) -> None:
    """Go back to an earlier release's slug and config, as a new release (no rebuild).

    Without a version, as on Heroku: the newest release before the live one that went live.
    Like a deploy, it runs the release's `release:` command first, unless told not to.
    """
    number = version.lstrip("v") if version is not None else None
    if number is not None and not number.isdigit():
        raise ShipyardError(f"'{version}' is not a release.", hint=f"Use a version from `shipyard releases {name}`, e.g. v3.")
    result = client().request("POST", f"/apps/{name}/rollback",
                              json={"version": int(number) if number else None, "release_phase": not skip_release_phase})
    out.print(f"Rolled {name} back to v{result['rolled_back_to']}: now live as v{result['release']}.")


# Click stops at the app's name (no interspersed options): everything after it is read by split_run_args, so
# no word of the user's command is ever taken for an option of `run`.
@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                               "allow_interspersed_args": False})
def run(ctx: typer.Context, name: str,
        detach: Annotated[bool, typer.Option("--detach", "-d", help="Don't wait; output goes to the logs.")] = False,
        no_tty: Annotated[bool, typer.Option("--no-tty", help="Don't attach a terminal, even from one.")] = False,
        ) -> None:
    """Run a one-off command in the app's environment: `shipyard run todo -- python -m app.seed`.

    From a terminal it is attached to it (`shipyard run todo` alone opens a shell); otherwise its
    output is streamed and its exit code passed through. Options go before the command; everything
    after `--` (or from the command's first word) is the command, dashes included.
    """
    from shipyard.cli.console import split_run_args

    parsed = split_run_args(ctx.args)
    if parsed.help:
        out.print(ctx.get_help(), markup=False, highlight=False)
        raise typer.Exit(0)
    detach, no_tty = detach or parsed.detach, no_tty or parsed.no_tty
    command = shlex.join(parsed.command)
    if not detach and not no_tty and sys.stdin.isatty() and sys.stdout.isatty():
        raise typer.Exit(attach(client().target, name, command or "bash"))
    if not command:
        raise ShipyardError("Give the command to run.",
                            hint=f"e.g. `shipyard run {name} -- python manage.py migrate`; for an interactive "
                                 f"shell, run `shipyard run {name}` from a terminal.")
    code = 0
    for raw in client().stream_lines(f"/apps/{name}/runs", method="POST", json={"command": command, "detach": detach}):
        if not raw:
            continue
        event = json_module.loads(raw)
        if "output" in event:
            print(event["output"], flush=True)
        elif "error" in event:
            raise ShipyardError(event["error"], hint=event.get("hint"))
        elif "exit" in event:
            code = int(event["exit"])
        elif event.get("detached"):
            out.print(f"Running `{command}` in the background; see `shipyard logs {name}`.")
    raise typer.Exit(code)


@app.command("ps:scale")
def ps_scale(name: str, pairs: Annotated[list[str], typer.Argument(help="TYPE=COUNT …, e.g. web=3 worker=1")]) -> None:
    """Run more or fewer instances of process types (health-gated, no downtime)."""
    changes: dict[str, int] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if not value.isdigit():
            raise ShipyardError(f"'{pair}' is not TYPE=COUNT.", hint="e.g. `shipyard ps:scale todo web=3`")
        changes[key] = int(value)
    formation = client().request("PATCH", f"/apps/{name}/formation", json=changes)
    out.print(f"Scaled {name}: " + ", ".join(f"{k}={v}" for k, v in sorted(formation.items())))


@app.command()
def restart(name: str, process_type: Annotated[Optional[str], typer.Argument(help="web, worker, …")] = None) -> None:
    """Replace the app's instances with fresh ones of the same release, without downtime."""
    client().request("POST", f"/apps/{name}/restart", params={"process_type": process_type} if process_type else {})
    out.print(f"Restarted {process_type or 'all processes'} of {name}.")


@app.command()
def ps(name: str) -> None:
    """The app's processes: name, state, release, for how long, restarts."""
    a = client().request("GET", f"/apps/{name}")
    if not a["instances"]:
        out.print(f"{name} has no running processes.")
    for i in a["instances"]:
        code = f" (exit {i['exit_code']})" if i["state"] == "crashed" and i["exit_code"] is not None else ""
        unreachable = i["state"] == "up" and i["name"].startswith("web.") and not i.get("routed", True)
        state = "up, but not reachable: the edge is down (it restarts by itself)" if unreachable else i["state"]
        age = duration(time.time() - i["since"])
        out.print(f"{i['name']}: {state}{code}  v{i['release']}  for {age}  restarts {i['restarts']}")
        if i.get("last_failure"):
            out.print(f"  last restart: {i['last_failure']}", markup=False, highlight=False)


@app.command()
def deploys(name: str, logs: Annotated[bool, typer.Option("--logs", help="Show each step's log too.")] = False,
            limit: Annotated[int, typer.Option("-n", help="How many deploys.")] = 5) -> None:
    """The app's recent deploys, each step with its time and status."""
    rows = client().request("GET", f"/apps/{name}/deploys", params={"limit": limit})
    if not rows:
        out.print(f"{name} has no deploys yet.")
    for d in rows:
        release = f"v{d['release']}" if d["release"] else "-"
        out.print(f"[bold]#{d['id']}[/bold] {d['description']}  {release}  {d['status']}  {d['started_at'][:19]}")
        for step in d["steps"]:
            took = f"{step['finished'] - step['started']:.2f} s" if step["finished"] else "…"
            out.print(f"  {step['name']:<34} {step['status']:<10} {took}")
            if logs:
                for line in step["log"]:
                    out.print(f"      {line}", markup=False)


@app.command()
def releases(name: str) -> None:
    """List an app's releases, newest first."""
    rows = client().request("GET", f"/apps/{name}/releases")
    table = Table("version", "status", "commit", "description", "created", box=None)
    for r in rows:
        marker = " (current)" if r["current"] else ""
        table.add_row(f"v{r['version']}{marker}", r["status"], r["commit"][:7], r["description"], r["created_at"][:19])
    out.print(table if rows else f"{name} has no releases yet: `git push` it.")


@app.command()
def logs(name: str, follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
         lines: Annotated[int, typer.Option("-n", "--lines", help="How many past lines.")] = 100) -> None:
    """Print an app's logs (its processes and the platform's events about it)."""
    try:
        for line in client().stream_lines(f"/apps/{name}/logs", lines=lines, follow=follow):
            print(line, flush=True)
    except KeyboardInterrupt:
        pass


def install_credential_helper(api_url: str) -> str | None:
    """Point git at the platform token for this API URL, in the user's global git config.

    The helper is a shell function, not a Python command, so it adds nothing to a push's time:
    for a local platform it reads the token file (so a new token is picked up), for a remote
    one it hands over $SHIPYARD_TOKEN as it is at push time.
    """
    if os.environ.get("SHIPYARD_API_URL") and not state.data_dir:
        password = '"$SHIPYARD_TOKEN"'
    else:
        settings = Settings(data_dir=state.data_dir.resolve()) if state.data_dir else Settings()
        password = f"$(cat {shlex.quote(str(settings.token_file))})"
    helper = f'!f() {{ test "$1" = get && echo username=shipyard && echo "password={password}"; }}; f'
    key = f"credential.{api_url}.helper"
    done = subprocess.run(["git", "config", "--global", "--replace-all", key, helper], capture_output=True)
    return "your global git config" if done.returncode == 0 else None


def main() -> None:
    try:
        app()
    except ShipyardError as exc:
        err.print(f"[red]Error:[/red] {exc.message}")
        if exc.hint:
            err.print(exc.hint)
        sys.exit(1)
