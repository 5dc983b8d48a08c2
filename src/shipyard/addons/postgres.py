"""The PostgreSQL add-on: a database and a role per app, their environment, backups.

Provisioning is SQL through psycopg as the platform's admin role, over TLS.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import psycopg
from psycopg import sql

from shipyard.addons.access import ADMIN_ROLE, CLIENT_HOST, HOST
from shipyard.addons.postgres_server import PostgresServer, find_pg_bin
from shipyard.errors import Conflict, NotFound, PlatformError


KIND = "postgres"  # the add-on's kind in the store


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


@dataclass(frozen=True)
class AdminTarget:
    """Where databases are provisioned: the embedded server, or one the user runs."""

    host: str
    port: int
    user: str
    password: str
    sslmode: str
    sslrootcert: str | None
    bin: Path  # pg_dump, pg_restore


def embedded_target(server: PostgresServer) -> AdminTarget:
    return AdminTarget(CLIENT_HOST, server.port, ADMIN_ROLE, server.admin_password, "verify-full",
                       str(server.ca.cert_file), server.bin)


def external_target(admin_url: str) -> AdminTarget:
    """SHIPYARD_POSTGRES_ADMIN_URL, e.g. postgresql://admin:pw@db.example:5432/postgres?sslmode=verify-full&sslrootcert=/ca.pem"""
    url = urlsplit(admin_url)
    if url.scheme not in ("postgres", "postgresql") or not url.hostname or not url.username:
        raise PlatformError("SHIPYARD_POSTGRES_ADMIN_URL is not a postgresql://user:password@host:port/db URL.",
                            hint="Give the URL of a role that may create roles and databases.")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    return AdminTarget(url.hostname, url.port or 5432, unquote(url.username), unquote(url.password or ""),
                       query.get("sslmode", "verify-full"), query.get("sslrootcert"), find_pg_bin())


# What an app with a database gets (also at build time: build commands may run migrations, as on Render).
ENV_KEYS = ("DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSSLMODE", "PGSSLROOTCERT")


def app_environment(creds: Credentials, sslmode: str, sslrootcert: str | None) -> dict[str, str]:
    """design.md's contract: DATABASE_URL and the same split into libpq's variables, verified TLS."""
    env = {"DATABASE_URL": creds.url(), "PGHOST": creds.host, "PGPORT": str(creds.port),
           "PGDATABASE": creds.database, "PGUSER": creds.user, "PGPASSWORD": creds.password,
           "PGSSLMODE": sslmode}
    if sslrootcert:
        env["PGSSLROOTCERT"] = sslrootcert
    return env


def moved_to_client_host(config: Mapping[str, str], ca_file: str) -> dict[str, str]:
    """For an app whose database was attached when apps connected to 127.0.0.1: its DATABASE_URL and PGHOST
    naming `localhost` instead. {} when there is nothing to change: no database, already moved, or a server
    other than the platform's own (whose certificate need not name localhost: only ours, from our CA, does)."""
    if config.get("PGHOST") != HOST or config.get("PGSSLROOTCERT") != ca_file:
        return {}
    changes = {"PGHOST": CLIENT_HOST}
    credentials, at, address = config.get("DATABASE_URL", "").rpartition("@")
    if at and address.startswith(f"{HOST}:"):
        changes["DATABASE_URL"] = f"{credentials}@{CLIENT_HOST}{address.removeprefix(HOST)}"
    return changes


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


# An app role may log in to its own database and nothing more: no privilege that reaches other apps' data,
# the server's files or programs, or other roles.
APP_ROLE_ATTRIBUTES = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
# So that one app cannot take all of the server's connections (max_connections) from the others.
CONNECTION_LIMIT = 20

# Roles provision() made: app_<name>, owning the database of the same name.
_APP_ROLES = r"""
SELECT r.rolname, r.rolconnlimit, r.rolsuper OR r.rolcreatedb OR r.rolcreaterole OR r.rolreplication OR r.rolbypassrls,
       ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)
FROM pg_roles r JOIN pg_database d ON d.datname = r.rolname AND d.datdba = r.oid
WHERE r.rolname LIKE 'app\_%'
"""


def enforce_role_limits(conn: psycopg.Connection, limit: int) -> list[str]:
    """Bring every app role to the connection limit and attributes provision() gives; the roles changed.

    Idempotent: a role already right is not touched, so an admin without SUPERUSER (an external server)
    only needs rights for what is actually wrong. Memberships are revoked: an app role is granted nothing."""
    changed = []
    for role, connlimit, privileged, member_of in conn.execute(_APP_ROLES).fetchall():
        ident = sql.Identifier(role)
        if privileged:
            conn.execute(sql.SQL("ALTER ROLE {} " + APP_ROLE_ATTRIBUTES).format(ident))
        if connlimit != limit:
            conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(ident, sql.Literal(limit)))
        for group in member_of:
            conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group), ident))
        if privileged or connlimit != limit or member_of:
            changed.append(role)
    return changed


class PostgresAddon:
    def __init__(self, target: AdminTarget, backups_dir: Path, connection_limit: int = CONNECTION_LIMIT) -> None:
        self.target = target
        self.backups_dir = backups_dir
        self.connection_limit = connection_limit

    def _admin(self, dbname: str = "postgres") -> psycopg.Connection:
        t = self.target
        return psycopg.connect(host=t.host, port=t.port, dbname=dbname, user=t.user, password=t.password,
                               sslmode=t.sslmode, sslrootcert=t.sslrootcert, autocommit=True, connect_timeout=10)

    def check(self) -> None:
        """Connect once as the admin, so a wrong URL or password is reported at start, not at first use;
        then hold every existing app role to the limits new ones get (roles made by older versions)."""
        try:
            with self._admin() as conn:
                conn.execute("SELECT 1")
                enforce_role_limits(conn, self.connection_limit)
        except psycopg.Error as exc:
            self_target = f"{self.target.user}@{self.target.host}:{self.target.port}"
            raise PlatformError(f"Cannot connect to PostgreSQL as {self_target}: {str(exc).strip()}",
                                hint="Check SHIPYARD_POSTGRES_ADMIN_URL (or the embedded server's log).") from None

    def provision(self, app: str) -> Credentials:
        role = role_name(app)
        password = secrets.token_urlsafe(24)
        with self._admin() as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                raise Conflict(f"App '{app}' already has a PostgreSQL database.",
                               hint=f"See it with `shipyard config {app}`.")
            ident = sql.Identifier(role)
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} " + APP_ROLE_ATTRIBUTES + " CONNECTION LIMIT {}")
                         .format(ident, sql.Literal(password), sql.Literal(self.connection_limit)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(ident, ident))
            conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(ident))
        return Credentials(self.target.host, self.target.port, role, role, password)

    def deprovision(self, app: str) -> None:
        role = sql.Identifier(role_name(app))
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(role))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))

    def _pg_env(self) -> dict[str, str]:
        env = {"PGPASSWORD": self.target.password, "PGSSLMODE": self.target.sslmode, "PATH": "/usr/bin:/bin"}
        if self.target.sslrootcert:
            env["PGSSLROOTCERT"] = self.target.sslrootcert
        return env

    def _pg_args(self, app: str) -> list[str]:
        return ["-h", self.target.host, "-p", str(self.target.port), "-U", self.target.user, "-d", role_name(app)]

    async def backup(self, app: str, automatic: bool = False) -> Backup:
        folder = self.backups_dir / app
        folder.mkdir(parents=True, exist_ok=True)
        prefix = "a" if automatic else "b"
        backup_id = time.strftime(f"{prefix}%Y%m%d-%H%M%S", time.gmtime()) + f"-{secrets.token_hex(2)}"
        target = folder / f"{backup_id}.dump"
        await self._run([str(self.target.bin / "pg_dump"), "-Fc", "-f", str(target), *self._pg_args(app)],
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
        await self._run([str(self.target.bin / "pg_restore"), "--clean", "--if-exists", "--no-owner",
                         f"--role={role_name(app)}", *self._pg_args(app), str(path)], "pg_restore")

    async def _run(self, argv: list[str], name: str) -> None:
        proc = await asyncio.create_subprocess_exec(*argv, env=self._pg_env(), stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise PlatformError(f"{name} failed: {out.decode(errors='replace').strip()[-500:]}")
