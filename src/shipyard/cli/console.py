"""The terminal side of `shipyard run` with a TTY: raw keystrokes up, output down, window resizes;
and how `run`'s arguments split into its own options and the user's command.

The remote process has a pty of its own, so the local terminal is put in raw mode and passes every
byte (Ctrl-C included) through; it is restored however the session ends.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import termios
import threading
import tty
from dataclasses import dataclass
from types import FrameType
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from shipyard.cli.client import Target
from shipyard.errors import PlatformError, ShipyardError


@dataclass(frozen=True)
class RunArgs:
    """What follows the app's name in `shipyard run APP …`."""

    command: list[str]
    detach: bool = False
    no_tty: bool = False
    help: bool = False


RUN_FLAGS = {"-d": "detach", "--detach": "detach", "--no-tty": "no_tty", "--help": "help"}


def split_run_args(args: list[str]) -> RunArgs:
    """`run`'s own options come first; the command starts at `--` or at the first other word, and from
    there on nothing is an option of `run` (`shipyard run todo ls -d` lists a directory, it doesn't detach)."""
    flags: dict[str, bool] = {}
    for index, arg in enumerate(args):
        if arg == "--":
            return RunArgs(args[index + 1:], **flags)
        if arg in RUN_FLAGS:
            flags[RUN_FLAGS[arg]] = True
            continue
        if arg.startswith("-"):
            raise ShipyardError(f"`shipyard run` has no option {arg}.",
                                hint=f"A command that starts with a dash goes after `--`: "
                                     f"`shipyard run APP -- {shlex.join(args[index:])}`.")
        return RunArgs(args[index:], **flags)
    return RunArgs([], **flags)


def console_url(target: Target, name: str, command: str, columns: int, rows: int, term: str) -> str:
    scheme, _, rest = target.api_url.partition("://")
    query = urlencode({"command": command, "columns": columns, "rows": rows, "term": term})
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/apps/{name}/console?{query}"


def attach(target: Target, name: str, command: str) -> int:
    """Run `command` in the app attached to this terminal; returns its exit code."""
    size = os.get_terminal_size(sys.stdout.fileno())  # the terminal's own, not $COLUMNS
    url = console_url(target, name, command, size.columns, size.lines, os.environ.get("TERM", "xterm-256color"))
    try:
        connection = connect(url, additional_headers={"Authorization": f"Bearer {target.token}"}, max_size=None,
                             open_timeout=30)
    except (OSError, InvalidHandshake, InvalidURI) as exc:
        raise PlatformError(f"Cannot open a console on Shipyard at {target.api_url}: {exc}",
                            hint="Is `shipyard up` running? Start it, or check SHIPYARD_API_URL.") from None
    with connection:
        try:
            first = json.loads(connection.recv())
        except ConnectionClosed:
            raise PlatformError("Shipyard closed the console before it started.",
                                hint="See the platform's output (`shipyard up`) for why.") from None
        if "error" in first:
            raise ShipyardError(first["error"], hint=first.get("hint"))
        return _session(connection)


def _session(connection: ClientConnection) -> int:
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    saved = termios.tcgetattr(stdin)

    def resized(signum: int, frame: FrameType | None) -> None:
        size = os.get_terminal_size(sys.stdout.fileno())
        try:
            connection.send(json.dumps({"resize": [size.columns, size.lines]}))
        except ConnectionClosed:
            pass

    previous = signal.signal(signal.SIGWINCH, resized)
    tty.setraw(stdin, termios.TCSADRAIN)  # TCSAFLUSH would drop what the user typed ahead
    threading.Thread(target=_forward_keystrokes, args=(connection, stdin), daemon=True).start()
    try:
        for message in connection:
            if isinstance(message, bytes):
                os.write(stdout, message)
                continue
            event = json.loads(message)
            if "exit" in event:
                return int(event["exit"])
    except ConnectionClosed:
        pass
    finally:
        termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, previous)
    raise PlatformError("The connection to Shipyard closed before the process ended.",
                        hint="The process was stopped; see `shipyard logs` for what it did.")


def _forward_keystrokes(connection: ClientConnection, stdin: int) -> None:
    while True:
        try:
            data = os.read(stdin, 4096)
        except OSError:
            return
        if not data:
            return
        try:
            connection.send(data)
        except ConnectionClosed:
            return
