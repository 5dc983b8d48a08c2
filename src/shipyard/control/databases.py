"""The PostgreSQL add-on as the control plane uses it: provision, release with the new env, back up."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict

from shipyard.addons.postgres import (ENV_KEYS, Backup, Credentials, PostgresAddon, app_environment, backup_due,
                                      expired)
from shipyard.control.platform import Log, Platform
from shipyard.errors import Conflict, NotFound, PlatformError
from shipyard.store import records

KIND = "postgres"
LOOPBACK = ("localhost", "127.0.0.1", "::1")


class Databases:
    def __init__(self, platform: Platform, addon: PostgresAddon | None, unavailable: str | None = None) -> None:
        self.platform = platform
        self.addon = addon
        self.unavailable = unavailable

    def _require(self) -> PostgresAddon:
        if self.addon is None:
            raise PlatformError(f"The PostgreSQL add-on is not available on this Shipyard: {self.unavailable}",
                                hint="Install Debian's `postgresql` package and restart `shipyard up`.")
        return self.addon

    def credentials(self, app: str) -> Credentials:
        found = self.platform.store.get_addon(app, KIND)
        if found is None:
            raise NotFound(f"App '{app}' has no PostgreSQL database.",
                           hint=f"Create one with `shipyard addons create {app} postgres`.")
        return Credentials(**found)  # type: ignore[arg-type]

    async def create(self, app: str, log: Log) -> records.Release | None:
        addon = self._require()
        self.platform.store.get_app(app)
        if not self.platform.local and addon.target.host in LOOPBACK:
            raise PlatformError(
                "The platform's own PostgreSQL server listens on this machine's loopback, which the cluster's pods "
                "cannot reach.",
                hint="Start Shipyard with SHIPYARD_POSTGRES_ADMIN_URL naming a server the pods can reach (and "
                     "SHIPYARD_KUBE_OPEN_EGRESS=1 if its address is private); CloudNativePG is not supported yet.")
        if self.platform.store.get_addon(app, KIND) is not None:
            raise Conflict(f"App '{app}' already has a PostgreSQL database.", hint=f"See it with `shipyard config {app}`.")
        creds = await asyncio.to_thread(addon.provision, app)
        self.platform.store.add_addon(app, KIND, asdict(creds))
        env = app_environment(creds, addon.target)
        return await self.platform.update_config(app, env, [], log, reason="Attach PostgreSQL")

    async def destroy(self, app: str, log: Log) -> records.Release | None:
        addon = self._require()
        self.credentials(app)
        await asyncio.to_thread(addon.deprovision, app)
        self.platform.store.delete_addon(app, KIND)
        present = [k for k in ENV_KEYS if k in self.platform.store.get_config(app)]
        return await self.platform.update_config(app, {}, present, log, reason="Detach PostgreSQL")

    async def before_app_destroyed(self, app: str) -> Backup | None:
        """An app's database goes with it, but a final backup stays in the data directory."""
        if self.platform.store.get_addon(app, KIND) is None or self.addon is None:
            return None
        backup = await self.addon.backup(app)
        await asyncio.to_thread(self.addon.deprovision, app)
        return backup

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
        return self._require().backups(app)

    async def restore(self, app: str, backup_id: str) -> None:
        self.credentials(app)
        await self._require().restore(app, backup_id)
