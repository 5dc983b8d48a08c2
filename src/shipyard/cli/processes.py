"""The top-level commands about a deployed app: rolling back, one-off runs, scaling and restarting its
processes, and what they did (processes, deploys, releases, logs)."""

from __future__ import annotations

import json as json_module
import shlex
import sys
import time
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.console import attach
from shipyard.cli.context import client, out
from shipyard.cli.render import duration
from shipyard.errors import ShipyardError

# Added to the root app without a name: these stay top-level commands (`shipyard ps todo`), listed in this order.
processes_cli = typer.Typer()


@processes_cli.command()
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
@processes_cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
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


@processes_cli.command("ps:scale")
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


@processes_cli.command()
def restart(name: str, process_type: Annotated[Optional[str], typer.Argument(help="web, worker, …")] = None) -> None:
    """Replace the app's instances with fresh ones of the same release, without downtime."""
    client().request("POST", f"/apps/{name}/restart", params={"process_type": process_type} if process_type else {})
    out.print(f"Restarted {process_type or 'all processes'} of {name}.")


@processes_cli.command()
def ps(name: str) -> None:
    """The app's processes: name, state, release, for how long, restarts, requests in flight, CPU and memory."""
    a = client().request("GET", f"/apps/{name}")
    at_zero = a.get("formation", {}).get("web") == 0 and a.get("autoscale", {}).get("web", {}).get("min") == 0
    if at_zero:
        out.print("web: at zero (scaled to zero when idle; the next request starts it)")
    elif not a["instances"]:
        out.print(f"{name} has no running processes.")
    for i in a["instances"]:
        code = f" (exit {i['exit_code']})" if i["state"] == "crashed" and i["exit_code"] is not None else ""
        unreachable = i["state"] == "up" and i["name"].startswith("web.") and not i.get("routed", True)
        state = "up, but not reachable: the edge is down (it restarts by itself)" if unreachable else i["state"]
        age = duration(time.time() - i["since"])
        figures = "".join([f"  in flight {i['in_flight']}" if i.get("in_flight") is not None else "",
                           f"  CPU {i['cpu']:.2f}" if i.get("cpu") is not None else "",
                           f"  {i['memory'] / 2**20:.0f} MB" if i.get("memory") is not None else ""])
        out.print(f"{i['name']}: {state}{code}  v{i['release']}  for {age}  restarts {i['restarts']}{figures}")
        if i.get("last_failure"):
            out.print(f"  last restart: {i['last_failure']}", markup=False, highlight=False)


@processes_cli.command()
def deploys(name: str, logs: Annotated[bool, typer.Option("--logs", help="Show each step's log too.")] = False,
            limit: Annotated[int, typer.Option("-n", help="How many deploys.")] = 5) -> None:
    """The app's recent deploys, each step with its time and status."""
    rows = client().request("GET", f"/apps/{name}/deploys", params={"limit": limit})
    if not rows:
        out.print(f"{name} has no deploys yet.")
    for d in rows:
        release = f"v{d['release']}" if d["release"] else "-"
        out.print(f"[bold]#{d['id']}[/bold] {escape(d['description'])}  {release}  {d['status']}  "
                  f"{d['started_at'][:19]}")
        for step in d["steps"]:
            took = f"{step['finished'] - step['started']:.2f} s" if step["finished"] else "…"
            out.print(f"  {step['name']:<34} {step['status']:<10} {took}")
            if logs:
                for line in step["log"]:
                    out.print(f"      {line}", markup=False)
        if d.get("error"):
            out.print(f"  [red]failed:[/red] {escape(d['error'])}")
            if d.get("hint"):
                out.print(f"  [yellow]how to fix:[/yellow] {escape(d['hint'])}")


@processes_cli.command()
def releases(name: str) -> None:
    """List an app's releases, newest first."""
    rows = client().request("GET", f"/apps/{name}/releases")
    table = Table("version", "status", "commit", "description", "created", box=None)
    for r in rows:
        marker = " (current)" if r["current"] else ""
        table.add_row(f"v{r['version']}{marker}", r["status"], r["commit"][:7], r["description"], r["created_at"][:19])
    out.print(table if rows else f"{name} has no releases yet: `git push` it.")


@processes_cli.command()
def logs(name: str, follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
         lines: Annotated[int, typer.Option("-n", "--lines", help="How many past lines.")] = 100) -> None:
    """Print an app's logs (its processes and the platform's events about it)."""
    try:
        for line in client().stream_lines(f"/apps/{name}/logs", lines=lines, follow=follow):
            print(line, flush=True)
    except KeyboardInterrupt:
        pass


@processes_cli.command()
def scale(name: str,
          what: Annotated[list[str], typer.Argument(help="TYPE=COUNT … for fixed counts, or one TYPE with --min/--max")],
          low: Annotated[Optional[int], typer.Option("--min", help="Fewest instances when autoscaling.")] = None,
          high: Annotated[Optional[int], typer.Option("--max", help="Most instances when autoscaling.")] = None,
          concurrency: Annotated[float, typer.Option(help="Requests in flight per instance to aim at.")] = 20,
          off: Annotated[bool, typer.Option("--off", help="Stop autoscaling TYPE (it keeps its current count).")] = False,
          ) -> None:
    """Autoscale a process type on its requests in flight (`web --min 1 --max 5 --concurrency 20`), or give
    fixed counts (`web=3`, which turns autoscaling off)."""
    fixed = [w for w in what if "=" in w]
    if fixed and len(fixed) == len(what) and low is None and high is None and not off:
        ps_scale(name, fixed)
        return
    if len(what) != 1 or fixed:
        raise ShipyardError(f"`{' '.join(what)}`: give TYPE=COUNT pairs, or one TYPE with --min and --max.",
                            hint=f"e.g. `shipyard scale {name} web=3` or `shipyard scale {name} web --min 1 --max 5`")
    process_type = what[0]
    if off:
        client().request("DELETE", f"/apps/{name}/autoscale/{process_type}")
        out.print(f"{process_type} of {name} is no longer autoscaled; it keeps its current count.")
        return
    if low is None or high is None:
        raise ShipyardError("Autoscaling needs both --min and --max.",
                            hint=f"e.g. `shipyard scale {name} {process_type} --min 1 --max 5 --concurrency 20`")
    bounds = client().request("PUT", f"/apps/{name}/autoscale/{process_type}",
                              json={"min": low, "max": high, "concurrency": concurrency})
    out.print(f"{process_type} of {name} now scales between {bounds['min']} and {bounds['max']} instances, aiming at "
              f"{bounds['concurrency']:g} requests in flight per instance. `shipyard apps info {name}` shows its "
              "decisions.")
