"""The PostgreSQL add-on: a database and a role per app, their environment, backups.

Provisioning is SQL through psycopg as the platform's admin role, over TLS.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from shipyard.addons.postgres_server import ADMIN_ROLE, HOST, PostgresServer
from shipyard.errors import Conflict, NotFound, PlatformError


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    database: str
    user: str
    password: str

    def url(self) -> str:
        return (f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{self.host}:{self.port}/"
                f"{quote(self.database, safe='')}")


def role_name(app: str) -> str:
    return "app_" + app.replace("-", "_")


def app_environment(creds: Credentials, ca_file: Path) -> dict[str, str]:
    """design.md's contract: DATABASE_URL and the same split into libpq's variables, verify-full TLS."""
    return {"DATABASE_URL": creds.url(), "PGHOST": creds.host, "PGPORT": str(creds.port),
            "PGDATABASE": creds.database, "PGUSER": creds.user, "PGPASSWORD": creds.password,
            "PGSSLMODE": "verify-full", "PGSSLROOTCERT": str(ca_file)}


@dataclass(frozen=True)
class Backup:
    id: str  # "b…" made on request, "a…" made by the daily schedule
    size: int
    created_at: float

    @property
    def automatic(self) -> bool:
        return self.id.startswith("a")


def backup_due(backups: list[Backup], now: float, interval: float) -> bool:
    automatic = [b.created_at for b in backups if b.automatic]
    return not automatic or now - max(automatic) >= interval


def expired(backups: list[Backup], keep: int) -> list[Backup]:
    """Automatic backups beyond the newest `keep`; backups made on request are never expired."""
    automatic = sorted((b for b in backups if b.automatic), key=lambda b: b.created_at, reverse=True)
    return automatic[keep:]


class PostgresAddon:
    def __init__(self, server: PostgresServer, backups_dir: Path) -> None:
        self.server = server
        self.backups_dir = backups_dir

    def _admin(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(host=HOST, port=self.server.port, dbname=dbname, user=ADMIN_ROLE,
                               password=self.server.admin_password, sslmode="verify-full",
                               sslrootcert=str(self.server.ca.cert_file), autocommit=True, connect_timeout=10)

    def provision(self, app: str) -> Credentials:
        role = role_name(app)
        password = secrets.token_urlsafe(24)
        with self._admin() as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                raise Conflict(f"App '{app}' already has a PostgreSQL database.",
                               hint=f"See it with `shipyard config {app}`.")
            ident = sql.Identifier(role)
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, sql.Literal(password)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(ident, ident))
            conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(ident))
        return Credentials(HOST, self.server.port, role, role, password)

    def deprovision(self, app: str) -> None:
        role = sql.Identifier(role_name(app))
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(role))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))

    def _pg_env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.server.admin_password, "PGSSLMODE": "verify-full",
                "PGSSLROOTCERT": str(self.server.ca.cert_file), "PATH": "/usr/bin:/bin"}

    def _pg_args(self, app: str) -> list[str]:
        return ["-h", HOST, "-p", str(self.server.port), "-U", ADMIN_ROLE, "-d", role_name(app)]

    async def backup(self, app: str, automatic: bool = False) -> Backup:
        folder = self.backups_dir / app
        folder.mkdir(parents=True, exist_ok=True)
        prefix = "a" if automatic else "b"
        backup_id = time.strftime(f"{prefix}%Y%m%d-%H%M%S", time.gmtime()) + f"-{secrets.token_hex(2)}"
        target = folder / f"{backup_id}.dump"
        await self._run([str(self.server.bin / "pg_dump"), "-Fc", "-f", str(target), *self._pg_args(app)],
                        "pg_dump")
        os.chmod(target, 0o600)
        return Backup(backup_id, target.stat().st_size, target.stat().st_mtime)

    def backups(self, app: str) -> list[Backup]:
        files = sorted((self.backups_dir / app).glob("*.dump"), key=lambda f: f.stat().st_mtime, reverse=True)
        return [Backup(f.stem, f.stat().st_size, f.stat().st_mtime) for f in files]

    def delete_backup(self, app: str, backup_id: str) -> None:
        self.backup_file(app, backup_id).unlink()

    def backup_file(self, app: str, backup_id: str) -> Path:
        path = self.backups_dir / app / f"{backup_id}.dump"
        if "/" in backup_id or not path.exists():
            raise NotFound(f"App '{app}' has no backup '{backup_id}'.", hint=f"List them with `shipyard db backups {app}`.")
        return path

    async def restore(self, app: str, backup_id: str) -> None:
        path = self.backup_file(app, backup_id)
        await self._run([str(self.server.bin / "pg_restore"), "--clean", "--if-exists", "--no-owner",
                         f"--role={role_name(app)}", *self._pg_args(app), str(path)], "pg_restore")

    async def _run(self, argv: list[str], name: str) -> None:
        proc = await asyncio.create_subprocess_exec(*argv, env=self._pg_env(), stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise PlatformError(f"{name} failed: {out.decode(errors='replace').strip()[-500:]}")
