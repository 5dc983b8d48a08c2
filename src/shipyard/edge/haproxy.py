"""The edge process (HAProxy): started, supervised and changed only through its runtime API.

HAProxy is never reloaded. The platform owns the listening socket and the routing state
(`routes.EdgeState`); `apply` turns a new route table into runtime-API commands (map entries, servers), and a
dead or hung HAProxy is replaced by one whose config already holds the current state.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from shipyard.edge.haproxy_cli import RuntimeAPI
from shipyard.addons.tls import CertificateAuthority
from shipyard.edge.certificates import EdgeCertificates, write_private
from shipyard.edge.haproxy_config import EdgeFiles, EdgeLimits, Listeners, haproxy_config, hosts_map_text
from shipyard.edge.listeners import bind
from shipyard.edge.log_receiver import LogReceiver
from shipyard.edge.router_log import RouterEntry, parse
from shipyard.edge.routes import AppRoute, EdgeState, deletions, plan, restarted
from shipyard.errors import PlatformError
from shipyard.proc import die_with_parent, stop_process

START_TIMEOUT = 10.0
STOP_GRACE = 5.0
# An HAProxy that is alive but does not answer (stopped, deadlocked) is killed and restarted like a dead one.
LIVENESS_INTERVAL = 0.5
LIVENESS_TIMEOUT = 1.0
LIVENESS_FAILURES = 2


def find_haproxy() -> str:
    """Debian's `haproxy` package puts it in /usr/sbin, which a user's PATH may lack."""
    found = shutil.which("haproxy", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")
    if found is None:
        raise PlatformError("HAProxy, Shipyard's edge, is not installed.",
                            hint="Install Debian's package: `apt-get install haproxy` (README, first command).")
    return found


class Edge:
    def __init__(self, *, config_dir: Path, admin_socket: Path, listen: str, base_domain: str,
                 log_file: Path, pool: int = 512, limits: EdgeLimits = EdgeLimits(),
                 https_listen: str | None = None, ca: CertificateAuthority | None = None) -> None:
        """https_listen: host:port of the HTTPS listener (none without it); ca signs the certificate served
        to clients naming no hostname the edge has one for (the edge's own names)."""
        self._config_dir = config_dir
        self._socket = admin_socket
        self._api = RuntimeAPI(admin_socket)
        self._listen = listen
        self._base_domain = base_domain
        self._log_file = log_file
        self._pool = pool
        self._limits = limits
        self._hosts_map = config_dir / "hosts.map"
        self._acme_map = config_dir / "acme.map"
        self._https_listen = https_listen
        self._ca = ca
        self.certificates = EdgeCertificates(config_dir / "certs", config_dir / "certs.list", self._api)
        self._state = EdgeState()
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._log_start = 0
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._restarting = False  # from its death until a new HAProxy answers
        self._listener: socket.socket | None = None
        self._tls_listener: socket.socket | None = None
        self.restarts = 0
        # Called once a restarted edge answers; it already serves the last applied routes.
        self.on_restart: Callable[[], None] | None = None
        # Called with the log entries of the requests answered since the last call (router lines, metrics);
        # lines HAProxy sends while it is None are dropped.
        self.on_requests: Callable[[list[RouterEntry]], None] | None = None
        self._receiver = LogReceiver(config_dir / "log.sock", self._requests_logged)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def start(self) -> None:
        if self.pid is not None:
            return
        self._stopping = False
        await self._receiver.start()
        await self._start_process()
        self._watch = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        """Restart HAProxy at once if it dies (crash, OOM kill, kill -9) or hangs, with the routes it had."""
        while True:
            proc = self._proc
            assert proc is not None
            hung = await self._until_exit_or_hang(proc)
            if self._stopping:
                return
            self._restarting = True
            self.restarts += 1
            why = "stopped answering its runtime API" if hung else f"exited with status {proc.returncode}"
            self._append_log(f"shipyard: the edge {why}; restarting it")
            delay = 0.0
            while not self._stopping:
                try:
                    async with self._lock:
                        await self._start_process()
                    break
                except PlatformError as exc:
                    self._append_log(f"shipyard: the edge did not restart: {exc.message}")
                    delay = min(max(delay * 2, 0.2), 5.0)
                    await asyncio.sleep(delay)
            if self.on_restart is not None:
                self.on_restart()

    async def _until_exit_or_hang(self, proc: asyncio.subprocess.Process) -> bool:
        """Wait for HAProxy to exit; True if it was killed here because it stopped answering."""
        failures = 0
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=LIVENESS_INTERVAL)
                return False
            except asyncio.TimeoutError:
                pass
            if self._stopping or await self._api.answers(LIVENESS_TIMEOUT):
                failures = 0
                await self._delete_idle_servers()
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
        # Bound once and kept by the platform too: while a killed HAProxy is replaced, new connections wait in
        # the socket's queue for the next one instead of being refused.
        if self._listener is None:
            self._listener = bind(self._listen)
        if self._https_listen and self._tls_listener is None:
            self._tls_listener = bind(self._https_listen)
        listeners = Listeners(http_fd=self._listener.fileno(),
                              https_fd=self._tls_listener.fileno() if self._tls_listener else None,
                              https_port=int(self._https_listen.rpartition(":")[2]) if self._https_listen else 443)
        self._state = restarted(self._state)
        config_file = self._config_dir / "haproxy.cfg"
        self._hosts_map.write_text(hosts_map_text(self._state))
        self._acme_map.write_text("")  # tokens of a dead HAProxy's pending orders: their orders fail and retry
        self.certificates.prepare()
        default_certificate = self._config_dir / "default.pem"
        if self._https_listen and not default_certificate.exists():
            write_private(default_certificate, self._own_certificate())
        files = EdgeFiles(admin_socket=self._socket, hosts_map=self._hosts_map, acme_map=self._acme_map,
                          crt_list=self.certificates.crt_list, default_certificate=default_certificate,
                          log_socket=self._receiver.path)
        config_file.write_text(haproxy_config(files=files, listeners=listeners, state=self._state, pool=self._pool,
                                              limits=self._limits))
        inherited = tuple(fd for fd in (listeners.http_fd, listeners.https_fd) if fd is not None)
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log_start = self._log_file.stat().st_size if self._log_file.exists() else 0
        with open(self._log_file, "ab") as log:
            # -db: in the foreground, one process (no master), so its pid is the one the platform supervises.
            self._proc = await asyncio.create_subprocess_exec(
                find_haproxy(), "-db", "-f", str(config_file), env={"PATH": "/usr/sbin:/usr/bin:/bin"}, cwd=self._config_dir,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=inherited,
                start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self._proc.returncode is None:
            if self._socket.exists() and await self._api.answers(LIVENESS_TIMEOUT):
                self._restarting = False
                return
            await asyncio.sleep(0.05)
        why = "exited" if self._proc.returncode is not None else f"did not answer within {START_TIMEOUT:.0f} s"
        await self._stop_process()
        raise PlatformError(f"The edge (HAProxy) {why} while starting on {self._listen}. It said:\n{self._log_tail()}",
                            hint=f"HAProxy's full log is {self._log_file}.")

    def _own_certificate(self) -> str:
        """For TLS clients naming no hostname the edge has a certificate for: the edge's own names."""
        if self._ca is None:
            raise PlatformError("The edge's HTTPS listener needs the platform's certificate authority.")
        host = (self._https_listen or "").rpartition(":")[0].strip("[]") or "localhost"
        return self._ca.issue_pem(sorted({"localhost", self._base_domain, host}))

    async def _remove_stale_socket(self) -> None:
        if not (self._socket.exists() or self._socket.is_symlink()):
            return
        # A socket that answers belongs to a live edge of another Shipyard on this data directory.
        if await self._api.answers(LIVENESS_TIMEOUT):
            raise PlatformError(f"Another edge (HAProxy) already answers on {self._socket}.",
                                hint="Stop the other `shipyard up` that uses this data directory first.")
        self._socket.unlink(missing_ok=True)

    async def apply(self, apps: Sequence[AppRoute]) -> None:
        """Converge the edge to `apps` with runtime-API commands; HAProxy never reloads."""
        async with self._lock:
            state, commands = plan(self._state, apps, self._pool, str(self._hosts_map))
            try:
                for command in commands:
                    await self._api.run(command)
            except PlatformError as exc:
                # Half applied: HAProxy no longer holds the state the next plan starts from. A new HAProxy
                # loads exactly that state (its routes as before this change), and the change is retried.
                self._append_log(f"shipyard: {exc.message}; restarting the edge with its last complete routes")
                if self._proc is not None and self._proc.returncode is None:
                    self._proc.kill()
                raise
            self._state = state
            # A restart from now on starts from this state; the file is what the config loads.
            self._hosts_map.write_text(hosts_map_text(state))

    async def _delete_idle_servers(self) -> None:
        if not self._state.retired:
            return
        async with self._lock:
            try:
                sessions = await self._api.server_sessions()
            except PlatformError:
                return
            state, commands = deletions(self._state, sessions)
            kept = dict(state.retired)
            for command in commands:
                try:
                    await self._api.run(command)
                except PlatformError:  # still has connections: tried again at the next check
                    backend, name = command.split()[-1].split("/")
                    server = next(s for s in self._state.retired[backend] if s.name == name)
                    kept[backend] = kept.get(backend, ()) + (server,)
            self._state = EdgeState(state.backends, state.hosts, state.servers, kept, state.next_server)

    def _requests_logged(self, lines: list[str]) -> None:
        if self.on_requests is not None:
            self.on_requests([entry for line in lines if (entry := parse(line)) is not None])

    def app_for_host(self, hostname: str) -> str | None:
        """The app a hostname (its own or a custom domain) is routed to, as the hosts map says."""
        for app, entries in self._state.hosts.items():
            if hostname in entries:
                return app
        return None

    def routes(self, app: str) -> bool:
        """The app has a route on the edge (a destroyed one's late log lines are not its)."""
        return app in self._state.backends

    def address(self, backend: str, server: str) -> str | None:
        """The instance address a request's log entry names (its backend and server)."""
        return self._state.addresses.get((backend, server))

    async def install_certificate(self, hostname: str, pem: str) -> None:
        async with self._lock:
            await self.certificates.install(hostname, pem, self.serving)

    async def remove_certificate(self, hostname: str) -> None:
        async with self._lock:
            await self.certificates.remove(hostname, self.serving)

    async def publish(self, token: str, key_authorization: str) -> None:
        """An ACME HTTP-01 answer, served by the edge at /.well-known/acme-challenge/<token> on every host."""
        await self._api.run(f"add map {self._acme_map} {token} {key_authorization}")

    async def withdraw(self, token: str) -> None:
        await self._api.run(f"del map {self._acme_map} {token}")

    @property
    def serving(self) -> bool:
        """HAProxy runs and answers: False while it is down or restarting."""
        return self.pid is not None and not self._restarting

    def routes_to(self, app: str, address: str) -> bool:
        return self.serving and self._state.routes_to(app, address)

    async def until_serving(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.serving and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.serving

    async def upstream_requests(self) -> dict[str, int]:
        """In-flight requests per instance address, servers already out of rotation included."""
        sessions = await self._api.server_sessions()
        found: dict[str, int] = {}
        for key, address in self._state.addresses.items():
            found[address] = found.get(address, 0) + sessions.get(key, 0)
        return found

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        await self._stop_process()
        self._receiver.close()
        for listener in (self._listener, self._tls_listener):
            if listener is not None:
                listener.close()
        self._listener = self._tls_listener = None

    async def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            await stop_process(proc, grace=STOP_GRACE)
        self._socket.unlink(missing_ok=True)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            with open(self._log_file, "rb") as f:
                f.seek(self._log_start)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join([line for line in text.splitlines() if line.strip()][-lines:]) or "(nothing)"
