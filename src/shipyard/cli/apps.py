"""`shipyard apps …`: create, list, inspect, change and destroy apps."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import client, out
from shipyard.cli.credential_helper import install_credential_helper
from shipyard.cli.groups import DefaultCommandGroup
from shipyard.errors import ShipyardError

apps_cli = typer.Typer(help="Create, list, inspect and destroy apps.", cls=DefaultCommandGroup)


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
    https = f"\n  HTTPS:        {a['https_url']}  (redirect {a['redirect_https']}, HSTS {'on' if a['hsts'] else 'off'})" \
        if a.get("https_url") else ""
    out.print(f"  URL:          {a['url']}{https}\n  Git remote:   {a['git_url']}\n  Branch:       {a['branch']}\n"
              f"  Boot timeout: {a['boot_timeout']} s\n  Size:         {a.get('size', 'small')}")
    for label, key in (("Start command", "start_command"), ("Build command", "build_command"),
                       ("Release command", "release_command"), ("Fixed port", "port"), ("Health path", "health_path")):
        if a.get(key):
            out.print(f"  {label + ':':<13} {a[key]}", markup=False)
    if a.get("formation"):
        out.print("  Formation:    " + " ".join(f"{k}={v}" for k, v in a["formation"].items()))
    for process_type, bounds in a.get("autoscale", {}).items():
        out.print(f"  Autoscale:    {process_type} {bounds['min']}–{bounds['max']} instances, "
                  f"{bounds['concurrency']:g} requests in flight per instance")
    for i in a["instances"]:
        code = f" (exit {i['exit_code']})" if i["state"] == "crashed" else ""
        out.print(f"  {i['name']}: {i['state']}{code}  v{i['release']}  port {i['port']}  restarts {i['restarts']}")
    if a.get("scaling"):
        out.print("  Scaling decisions (newest last):")
        for d in a["scaling"]:
            panic = "  PANIC" if d["panicking"] else ""
            out.print(f"    {d['at'][11:19]}  {d['current']} → {d['desired']}  in flight: {d['stable_concurrency']:g} "
                      f"(stable window), {d['panic_concurrency']:g} (panic window){panic}  {escape(d['reason'])}")


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
    redirect_https: Annotated[Optional[str], typer.Option(help="Redirect plain HTTP to HTTPS: on, off, or auto (once "
                                                          "a hostname's certificate is publicly trusted).")] = None,
    hsts: Annotated[Optional[str], typer.Option(help="Send Strict-Transport-Security over HTTPS: on or off.")] = None,
) -> None:
    """Change an app's settings; the start, build and release commands apply from the next push, a size at once."""
    client().request("PATCH", f"/apps/{name}", json={"branch": branch, "boot_timeout": boot_timeout,
                                                      "start_command": start_command,
                                                      "build_command": build_command,
                                                      "release_command": release_command, "port": port,
                                                      "health_path": health_path, "size": size,
                                                      "redirect_https": redirect_https, "hsts": hsts})
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
