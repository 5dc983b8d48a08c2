"""The platform's PostgreSQL server: initdb on first start, TLS from the Shipyard CA, supervised.

It runs as the `postgres` system user (initdb and postgres refuse root), listens on a
loopback port chosen once and kept, and only accepts TLS connections from a role to the
database of the same name (plus the platform's admin role).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil

from shipyard.addons.tls import CertificateAuthority
from shipyard.errors import PlatformError
from shipyard.proc import bwrap_system_args, die_with_parent, find_bwrap, free_port, setpriv_args, stop_process

ADMIN_ROLE = "shipyard_admin"
SERVER_USER = "postgres"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0

PG_HBA = f"""# Written by Shipyard at every start.
local   all       {ADMIN_ROLE}                scram-sha-256
hostssl all       {ADMIN_ROLE}  {HOST}/32     scram-sha-256
hostssl sameuser  all           {HOST}/32     scram-sha-256
host    all       all           0.0.0.0/0     reject
host    all       all           ::/0          reject
"""


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
    def __init__(self, root: Path, ca: CertificateAuthority, log_file: Path) -> None:
        self.root = root  # owned by root: state.json (admin password, port) lives here, 0600
        self.data = root / "data"  # PGDATA, owned by postgres
        self.run_dir = root / "run"  # unix socket, owned by postgres
        self.ca = ca
        self.log_file = log_file
        self._proc: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0

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
            self.ca.issue(cert, key, [HOST, "localhost"])
            for path in (cert, key):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        (self.data / "pg_hba.conf").write_text(PG_HBA)

    def _argv(self) -> list[str]:
        settings = {"listen_addresses": HOST, "port": str(self.port), "unix_socket_directories": str(INSIDE / "run"),
                    "ssl": "on", "ssl_cert_file": "server.crt", "ssl_key_file": "server.key",
                    "password_encryption": "scram-sha-256", "max_connections": "200",
                    "logging_collector": "off", "log_line_prefix": "%m [%p] %q%u@%d "}
        argv = [str(self.bin / "postgres"), "-D", str(INSIDE / "data")]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return self._wrap(argv)

    async def start(self) -> None:
        self.initialize()
        await self._spawn()
        self._watch = asyncio.create_task(self._supervise())

    def _postmaster_pid(self) -> int | None:
        """The running postmaster, as the host sees it (postmaster.pid holds its pid inside its namespace)."""
        if self._proc is None or self._proc.returncode is not None:
            return None
        try:
            tree = psutil.Process(self._proc.pid).children(recursive=True)
            return next((p.pid for p in tree if p.name() == "postgres" and "-D" in p.cmdline()), None)
        except psutil.Error:
            return None

    async def _stop_postmaster(self, timeout: float = 15) -> None:
        # Signal the postmaster itself: bubblewrap, its parent, does not pass signals on.
        # SIGINT is the "fast" shutdown: open transactions roll back, committed data is on disk.
        pid = self._postmaster_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while self._postmaster_pid() == pid and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._postmaster_pid() == pid:
            os.kill(pid, signal.SIGKILL)

    async def _spawn(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        start = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open(self.log_file, "ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv(), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, preexec_fn=die_with_parent, env={"LANG": "C.UTF-8"})
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                break
            if (self.run_dir / f".s.PGSQL.{self.port}").exists() and await self._accepts():
                return
            await asyncio.sleep(0.1)
        await stop_process(self._proc, grace=5)
        with open(self.log_file, "rb") as f:
            f.seek(start)
            tail = "\n".join(f.read().decode(errors="replace").splitlines()[-20:])
        raise PlatformError(f"The PostgreSQL server did not start. Its log said:\n{tail}",
                            hint=f"The full log is {self.log_file}.")

    async def _accepts(self) -> bool:
        try:
            _, writer = await asyncio.open_connection(HOST, self.port)
        except OSError:
            return False
        writer.close()
        return True

    async def _supervise(self) -> None:
        """Restart the server if it dies (crash, OOM kill): apps reconnect, committed data is on disk."""
        while True:
            assert self._proc is not None
            await self._proc.wait()
            if self._stopping:
                return
            self.restarts += 1
            await asyncio.sleep(min(2 ** min(self.restarts, 5), 30) / 4)
            try:
                await self._spawn()
            except PlatformError:
                continue

    async def stop(self) -> None:
        self._stopping = True
        if self._watch:
            self._watch.cancel()
        await self._stop_postmaster()
        if self._proc is not None:
            await stop_process(self._proc, grace=5)
