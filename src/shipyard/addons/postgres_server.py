"""The platform's PostgreSQL server: initdb on first start, TLS from the Shipyard CA, supervised.

It runs as the `postgres` system user (initdb and postgres refuse root), listens on a
loopback port chosen once and kept, and only accepts TLS connections from a role to the
database of the same name (plus the platform's admin role). If its postmaster dies (kill -9,
OOM kill), it is started again at once; PostgreSQL replays its WAL on start, so every committed
transaction is still there, and apps reconnect by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from shipyard.addons.access import (ADMIN_ROLE, CLIENT_HOST, HOST, IPV6_LOOPBACK, has_ipv6_loopback, listen_addresses,
                                    pg_hba)
from shipyard.addons.tls import CertificateAuthority
from shipyard.errors import PlatformError
from shipyard.proc import bwrap_system_args, die_with_parent, find_bwrap, free_port, setpriv_args, stop_process

SERVER_USER = "postgres"
# postmaster.pid's 8th line: "starting", "ready", "stopping" (PostgreSQL ≥ 10)
PID_FILE_STATUS_LINE = 8
START_TIMEOUT = 30.0
READY_POLL = 0.05
STOP_GRACE = 15.0
# A server that stayed up this long crashed "once": it is restarted at once. Crashes closer together
# are restarted after 0.5, 1, 2 … 30 s, so a server that cannot start does not spin.
STABLE_AFTER = 30.0
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0



def find_pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise PlatformError("PostgreSQL's server programs were not found (/usr/lib/postgresql/*/bin).",
                            hint="Install Debian's `postgresql` package: `apt-get install postgresql`.")
    return versions[-1].parent


# Where the server sees its folder: the platform's data directory may sit below folders the
# `postgres` user cannot cross (e.g. /root), so the server runs in a mount namespace of its own.
INSIDE = Path("/var/lib/shipyard/postgres")


def sandboxed(argv: list[str], root: Path, uid: int, gid: int) -> list[str]:
    # Its own pid namespace: if the platform is killed (even with SIGKILL), bwrap's init dies with it and
    # the kernel ends every process of the namespace. (A parent-death signal does not reach a child that
    # changed its uid under bwrap, so without the namespace the server outlived the platform.)
    args = [str(find_bwrap()), "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--proc", "/proc",
            "--dev", "/dev", "--tmpfs", "/tmp", *bwrap_system_args()]
    for parent in ("/var", "/var/lib", "/var/lib/shipyard"):
        args += ["--perms", "0755", "--dir", parent]
    return [*args, "--bind", str(root), str(INSIDE), "--chdir", str(INSIDE), "--", *setpriv_args(uid, gid), *argv]


class PostgresServer:
    def __init__(self, root: Path, ca: CertificateAuthority, log_file: Path,
                 announce: Callable[[str], None] | None = None) -> None:
        self.root = root  # owned by root: state.json (admin password, port) lives here, 0600
        self.data = root / "data"  # PGDATA, owned by postgres
        self.run_dir = root / "run"  # unix socket, owned by postgres
        self.ca = ca
        self.log_file = log_file
        self._announce = announce
        self._proc: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._started = False
        self._ready_at = 0.0  # monotonic time the running server became ready
        self.restarts = 0
        self._last_restart = ""  # what the last restart was, for `shipyard doctor`

    # State kept across restarts: the port apps' DATABASE_URL names, and the admin password.
    # Written once at the first start, then only read: load it once.
    @functools.cached_property
    def state(self) -> dict[str, object]:
        return json.loads((self.root / "state.json").read_text())

    @property
    def port(self) -> int:
        return int(self.state["port"])  # type: ignore[arg-type]

    @property
    def admin_password(self) -> str:
        return str(self.state["admin_password"])

    @functools.cached_property
    def bin(self) -> Path:
        return find_pg_bin()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    @property
    def postmaster_pid(self) -> int | None:
        """The running postmaster, as the host sees it (postmaster.pid holds its pid inside its namespace)."""
        return _postmaster_of(self._proc)

    def status(self) -> str | None:
        """One line for `shipyard doctor`; None when the platform does not run this server."""
        if not self._started:
            return None
        pid = self.postmaster_pid
        state = (f"the platform's server is up (pid {pid})" if pid and self._ready_at
                 else "the platform's server is restarting")
        if not self.restarts:
            return f"{state}, never restarted"
        times = f"{self.restarts} time{'s' if self.restarts > 1 else ''}"
        return f"{state}, restarted {times} (last: {self._last_restart})"

    def _owner(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise PlatformError(f"There is no `{SERVER_USER}` system user to run PostgreSQL as.",
                                hint="Install Debian's `postgresql` package, which creates it.") from None

    def _wrap(self, argv: list[str]) -> list[str]:
        owner = self._owner()
        return sandboxed(argv, self.root, owner.pw_uid, owner.pw_gid)

    def initialize(self) -> None:
        """First start: state, initdb, certificate. Idempotent."""
        owner = self._owner()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)
        state_file = self.root / "state.json"
        if not state_file.exists():
            fd = os.open(state_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"port": free_port(HOST), "admin_password": secrets.token_urlsafe(24)}, f)
        for folder in (self.data, self.run_dir):
            folder.mkdir(exist_ok=True)
            os.chown(folder, owner.pw_uid, owner.pw_gid)
            os.chmod(folder, 0o700)
        if not (self.data / "PG_VERSION").exists():
            pwfile = self.run_dir / "initdb-password"
            pwfile.write_text(self.admin_password + "\n")
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
            try:
                done = subprocess.run(self._wrap(
                    [str(self.bin / "initdb"), "-D", str(INSIDE / "data"), "-U", ADMIN_ROLE,
                     f"--pwfile={INSIDE / 'run' / pwfile.name}", "--auth-local=scram-sha-256",
                     "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]), capture_output=True, text=True)
            finally:
                pwfile.unlink(missing_ok=True)
            if done.returncode != 0:
                shutil.rmtree(self.data, ignore_errors=True)
                tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
                raise PlatformError(f"initdb failed:\n{tail}", hint="See the lines above.")
        cert, key = self.data / "server.crt", self.data / "server.key"
        if not cert.exists():
            self.ca.issue(cert, key, [CLIENT_HOST, HOST, IPV6_LOOPBACK])
            for path in (cert, key):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        (self.data / "pg_hba.conf").write_text(pg_hba())

    def _argv(self) -> list[str]:
        settings = {"listen_addresses": listen_addresses(has_ipv6_loopback()), "port": str(self.port), "unix_socket_directories": str(INSIDE / "run"),
                    "ssl": "on", "ssl_cert_file": "server.crt", "ssl_key_file": "server.key",
                    "password_encryption": "scram-sha-256", "max_connections": "200",
                    "logging_collector": "off", "log_line_prefix": "%m [%p] %q%u@%d "}
        argv = [str(self.bin / "postgres"), "-D", str(INSIDE / "data")]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return self._wrap(argv)

    async def start(self) -> None:
        self.initialize()
        self._stopping = False
        await self._spawn()
        self._started = True
        self._watch = asyncio.create_task(self._supervise())

    async def _spawn(self) -> None:
        """Start the server and wait until it accepts connections (after crash recovery, if it needs one)."""
        await asyncio.to_thread(self._clear_leftovers)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        start = self.log_file.stat().st_size if self.log_file.exists() else 0
        self._ready_at = 0.0
        with open(self.log_file, "ab") as log:
            proc = self._proc = await asyncio.create_subprocess_exec(
                *self._argv(), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, preexec_fn=die_with_parent, env={"LANG": "C.UTF-8"})
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and proc.returncode is None:
                if self._pid_file_says_ready() and await self._accepts():
                    self._ready_at = time.monotonic()
                    return
                await asyncio.sleep(READY_POLL)
        except BaseException:  # cancelled by stop(): the half-started server goes too
            await _terminate(proc)
            raise
        await _terminate(proc)
        with open(self.log_file, "rb") as f:
            f.seek(start)
            tail = "\n".join(f.read().decode(errors="replace").splitlines()[-20:])
        raise PlatformError(f"The PostgreSQL server did not start. Its log said:\n{tail}",
                            hint=f"The full log is {self.log_file}.")

    def _pid_file_says_ready(self) -> bool:
        # What `pg_ctl start -w` waits for: the status line of the postmaster.pid the new server wrote
        # (the old one was removed before it started) turns "ready" once recovery is done.
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= PID_FILE_STATUS_LINE and lines[PID_FILE_STATUS_LINE - 1].strip() == "ready"

    async def _accepts(self) -> bool:
        try:
            _, writer = await asyncio.open_connection(HOST, self.port)
        except OSError:
            return False
        writer.close()
        return True

    def _clear_leftovers(self) -> None:
        """Before a start: end any server still running on this data directory, then remove its lock files.

        The server runs in pid and IPC namespaces of its own, so PostgreSQL's own interlocks (the pid in
        postmaster.pid, its System V shared memory) cannot see a previous server: a pid in a dead namespace
        means nothing in the new one, and its shared memory went with its IPC namespace. A previous server
        is found instead by the folder every one of its processes works in: the data directory itself.
        Its processes are killed (as a crash would; recovery follows), so no old backend writes the files
        the new server recovers. With none left, the lock files are stale and go.
        """
        left = _processes_in(self.data)
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.kill()
        _, alive = psutil.wait_procs(left, timeout=10)
        if alive:
            raise PlatformError(f"An old PostgreSQL server on {self.data} did not stop "
                                f"(pids {', '.join(str(p.pid) for p in alive)}).",
                                hint="Stop it (kill -9 those pids), then start Shipyard again.")
        for stale in (self.data / "postmaster.pid", self.run_dir / f".s.PGSQL.{self.port}",
                      self.run_dir / f".s.PGSQL.{self.port}.lock"):
            stale.unlink(missing_ok=True)

    async def _supervise(self) -> None:
        """Restart the server if it dies (crash, OOM kill, kill -9): apps reconnect, committed data is on disk."""
        in_a_row = 0
        while True:
            proc = self._proc
            assert proc is not None
            await proc.wait()
            if self._stopping:
                return
            died = time.monotonic()
            in_a_row = 1 if died - self._ready_at >= STABLE_AFTER else in_a_row + 1
            self.restarts += 1
            how = _exit_reason(proc.returncode)
            self._last_restart = f"it {how} at {time.strftime('%H:%M:%S')}"
            self._say(f"The PostgreSQL server {how}; restarting it (restart {self.restarts}).")
            delay = 0.0 if in_a_row == 1 else min(FIRST_BACKOFF * 2 ** (in_a_row - 2), MAX_BACKOFF)
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._spawn()
                    break
                except (PlatformError, OSError) as exc:  # OSError: e.g. no process could be forked
                    delay = min(max(delay * 2, FIRST_BACKOFF), MAX_BACKOFF)
                    why = _cause(exc.message) if isinstance(exc, PlatformError) else str(exc)
                    self._say(f"The PostgreSQL server did not restart: {why} "
                              f"Trying again in {delay:g} s (log: {self.log_file}).")
            took = time.monotonic() - died
            self._last_restart += f", back in {took:.2f} s"
            self._say(f"The PostgreSQL server is back after {took:.2f} s; apps reconnect.")

    def _say(self, line: str) -> None:
        with contextlib.suppress(OSError), open(self.log_file, "a") as log:
            log.write(f"shipyard: {line}\n")
        if self._announce is not None:
            self._announce(line)

    async def stop(self) -> None:
        """Fast shutdown (open transactions roll back, committed ones are on disk), also mid-restart."""
        self._stopping = True
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            await asyncio.wait([watch])  # its own failure or cancellation must not stop the shutdown
            if not watch.cancelled() and watch.exception() is not None:
                self._say(f"The PostgreSQL server's supervisor had failed: {watch.exception()!r}")
        if self._proc is not None:
            await _terminate(self._proc)
        # Stopped mid-start, the namespace's processes may still be on their way out when bubblewrap is reaped:
        # stop() returns only once none works in the data directory any more.
        left = await asyncio.to_thread(_processes_in, self.data)
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.kill()
        await asyncio.to_thread(_until_dead, left, 10.0)


def _postmaster_of(proc: asyncio.subprocess.Process | None) -> int | None:
    """The postmaster in bubblewrap's process tree: bubblewrap, then its init, then `postgres -D`."""
    if proc is None or proc.returncode is not None:
        return None
    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
        return next((p.pid for p in tree if p.name() == "postgres" and "-D" in p.cmdline()), None)
    except psutil.Error:
        return None


async def _terminate(proc: asyncio.subprocess.Process, timeout: float = STOP_GRACE) -> None:
    # Read now: once bubblewrap is reaped, what ran in its namespaces (killed with it) has no parent to find it by,
    # and may still be on its way out.
    try:
        tree = psutil.Process(proc.pid).children(recursive=True) if proc.returncode is None else []
    except psutil.Error:
        tree = []
    # Signal the postmaster itself: bubblewrap, its parent, does not pass signals on.
    # SIGINT is the "fast" shutdown: open transactions roll back, committed data is on disk.
    pid = _postmaster_of(proc)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while _postmaster_of(proc) == pid and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if _postmaster_of(proc) == pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    await stop_process(proc, grace=5)
    for process in tree:
        with contextlib.suppress(psutil.Error):
            process.kill()
    await asyncio.to_thread(_until_dead, tree, 10.0)


def _until_dead(processes: list[psutil.Process], timeout: float) -> None:
    """Until each has exited or is a zombie: a killed namespace's orphans are reaped by the machine's init, which
    may take seconds (psutil.wait_procs waits for that too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        except psutil.Error:  # one exited between the two checks: look again
            continue
        if not running:
            return
        time.sleep(0.01)


def _processes_in(folder: Path) -> list[psutil.Process]:
    """Processes whose working directory is `folder`, compared by inode (it has another path inside a
    mount namespace)."""
    try:
        wanted = os.stat(folder)
    except OSError:
        return []
    found = []
    for process in psutil.process_iter(["name"]):
        if process.info["name"] != "postgres":
            continue
        try:
            cwd = os.stat(f"/proc/{process.pid}/cwd")
        except OSError:
            continue
        if (cwd.st_dev, cwd.st_ino) == (wanted.st_dev, wanted.st_ino):
            found.append(process)
    return found


def _exit_reason(code: int | None) -> str:
    # bubblewrap's init exits with 128 + N when the postmaster was killed by signal N.
    if code is not None and code > 128:
        with contextlib.suppress(ValueError):
            return f"was killed ({signal.Signals(code - 128).name})"
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed ({signal.Signals(-code).name})"
    return f"exited with status {code}"


def _cause(message: str) -> str:
    """A failed start's message holds the server's log: its last FATAL line says why, if there is one."""
    lines = message.splitlines()
    fatal = [line.split("FATAL:", 1)[1].strip() for line in lines if "FATAL:" in line]
    return (fatal[-1] + ".") if fatal else lines[-1]
