"""The PostgreSQL add-on as the control plane uses it: provision, release with the new env, back up.

Databases are made by SQL on a server (the embedded one, or SHIPYARD_POSTGRES_ADMIN_URL's), or, on a Kubernetes
cluster with CloudNativePG, by that operator (cloud_databases.py); apps see the same DATABASE_URL and PG*.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict

from shipyard.addons.postgres import (ENV_KEYS, KIND, Backup, Credentials, PostgresAddon, app_environment,
                                      backup_due, expired)
from shipyard.control.cloud_databases import SSLMODE, CloudNativePG
from shipyard.control.platform import Log, Platform
from shipyard.errors import Conflict, NotFound, PlatformError
from shipyard.store import records

LOOPBACK = ("localhost", "127.0.0.1", "::1")


class Databases:
    def __init__(self, platform: Platform, addon: PostgresAddon | None, unavailable: str | None = None) -> None:
        self.platform = platform
        self.addon = addon  # databases made by SQL
        self.cloud: CloudNativePG | None = None  # or by CloudNativePG, on a Kubernetes cluster
        # CloudNativePG's Cluster lists every app's role: one change at a time, each seeing the one before it.
        self._cluster_change = asyncio.Lock()
        self.unavailable = unavailable

    @property
    def available(self) -> bool:
        return self.addon is not None or self.cloud is not None

    def _require(self) -> PostgresAddon:
        if self.cloud is not None:
            raise PlatformError(
                "Databases on the cluster's CloudNativePG are backed up by CloudNativePG itself, not by Shipyard.",
                hint="Give the Cluster a backup (CloudNativePG's Barman Cloud plugin and an object store) and a "
                     "ScheduledBackup: https://cloudnative-pg.io/documentation/current/backup/")
        if self.addon is None:
            raise PlatformError(f"The PostgreSQL add-on is not available on this Shipyard: {self.unavailable}",
                                hint="Install Debian's `postgresql` package and restart `shipyard up`."
                                if self.platform.local else
                                "Install CloudNativePG on the cluster (https://cloudnative-pg.io), or set "
                                "SHIPYARD_POSTGRES_ADMIN_URL to a server its pods can reach; then restart "
                                "`shipyard up`.")
        return self.addon

    def _others(self, app: str) -> list[str]:
        """The apps besides `app` that have a database (CloudNativePG's Cluster lists all their roles)."""
        return [a.name for a in self.platform.store.list_apps()
                if a.name != app and not a.damage and self.platform.store.get_addon(a.name, KIND) is not None]

    def credentials(self, app: str) -> Credentials:
        found = self.platform.store.get_addon(app, KIND)
        if found is None:
            raise NotFound(f"App '{app}' has no PostgreSQL database.",
                           hint=f"Create one with `shipyard addons create {app} postgres`.")
        return Credentials(**found)  # type: ignore[arg-type]

    async def create(self, app: str, log: Log) -> records.Release | None:
        self.platform.store.get_app(app)
        if self.platform.store.get_addon(app, KIND) is not None:
            raise Conflict(f"App '{app}' already has a PostgreSQL database.", hint=f"See it with `shipyard config {app}`.")
        if self.cloud is not None:
            async with self._cluster_change:
                creds = await self.cloud.provision(app, self._others(app), log)
                self.platform.store.add_addon(app, KIND, asdict(creds))
            env = app_environment(creds, SSLMODE, str(self.cloud.ca_file))
        else:
            addon = self._require()
            if not self.platform.local and addon.target.host in LOOPBACK:
                raise PlatformError(
                    "The platform's own PostgreSQL server listens on this machine's loopback, which the cluster's "
                    "pods cannot reach.",
                    hint="Install CloudNativePG on the cluster, or start Shipyard with SHIPYARD_POSTGRES_ADMIN_URL "
                         "naming a server the pods can reach (and SHIPYARD_KUBE_OPEN_EGRESS=1 if its address is "
                         "private).")
            creds = await asyncio.to_thread(addon.provision, app)
            env = app_environment(creds, addon.target.sslmode, addon.target.sslrootcert)
            self.platform.store.add_addon(app, KIND, asdict(creds))
        return await self.platform.update_config(app, env, [], log, reason="Attach PostgreSQL")

    async def destroy(self, app: str, log: Log) -> records.Release | None:
        self.credentials(app)
        await self._deprovision(app)
        present = [k for k in ENV_KEYS if k in self.platform.store.get_config(app)]
        return await self.platform.update_config(app, {}, present, log, reason="Detach PostgreSQL")

    async def before_app_destroyed(self, app: str) -> Backup | None:
        """An app's database goes with it, but a final backup stays in the data directory (CloudNativePG's
        own backups, where the Cluster has them, are the only copy of a database there)."""
        if self.platform.store.get_addon(app, KIND) is None or not self.available:
            return None
        backup = await self.addon.backup(app) if self.addon is not None else None
        await self._deprovision(app)
        return backup

    async def _deprovision(self, app: str) -> None:
        """Drop the app's database and role, and forget its credentials."""
        if self.cloud is not None:
            async with self._cluster_change:
                await self.cloud.deprovision(app, self._others(app))
                self.platform.store.delete_addon(app, KIND)
            return
        await asyncio.to_thread(self._require().deprovision, app)
        self.platform.store.delete_addon(app, KIND)

    async def scheduled_backups(self, interval: float, keep: int, check_every: float = 600) -> None:
        """The daily automatic backup of every database, keeping the newest `keep` of them."""
        while True:
            if self.addon is not None:
                for app in self.platform.store.list_apps():
                    # A damaged app is listed with its fix (`shipyard apps`); its add-on row may not be readable.
                    if app.damage or self.platform.store.get_addon(app.name, KIND) is None:
                        continue
                    try:
                        if backup_due(self.addon.backups(app.name), time.time(), interval):
                            await self.addon.backup(app.name, automatic=True)
                        for old in expired(self.addon.backups(app.name), keep):
                            self.addon.delete_backup(app.name, old.id)
                    except PlatformError as exc:
                        self.platform.supervisor.app_log(app.name).write(
                            "shipyard[backup]", f"Automatic backup failed: {exc.message}")
            await asyncio.sleep(check_every)

    def backup_path(self, app: str, backup_id: str) -> str:
        return str(self._require().backup_file(app, backup_id))

    async def backup(self, app: str) -> Backup:
        self.credentials(app)
        return await self._require().backup(app)

    def backups(self, app: str) -> list[Backup]:
        self.platform.store.get_app(app)
        if self.cloud is not None:
            return []  # CloudNativePG's, not Shipyard's (`_require` says where)
        return self._require().backups(app)

    async def restore(self, app: str, backup_id: str) -> None:
        self.credentials(app)
        await self._require().restore(app, backup_id)
