"""What a user can change, checked the same way whichever door it comes through: the JSON API or the dashboard.

Each method validates its input (raising the user-facing errors of `shipyard.errors`) and then asks the
control plane to converge; the HTTP layers above only translate requests and answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from shipyard.api.schemas import AppUpdate
from shipyard.control.databases import Databases
from shipyard.control.platform import Platform
from shipyard.control.releases import formation_of, previous_release, validate_release_command
from shipyard.errors import InvalidInput
from shipyard.runtime.limits import size_named
from shipyard.store import records
from shipyard.store.records import AutoscaleBounds
from shipyard.addons.postgres import Backup
from shipyard.store.names import validate_branch, validate_config_key, validate_config_total, validate_config_value

Log = Callable[[str], Awaitable[None]]
MAX_SCALE = 20


async def quiet(line: str) -> None:
    """Where a change's log goes when nobody streams it (it is recorded by `shipyard deploys` anyway)."""


class Operations:
    def __init__(self, platform: Platform, databases: Databases) -> None:
        self.platform = platform
        self.databases = databases

    def create_app(self, name: str, branch: str = "main", boot_timeout: int = 240) -> records.App:
        return self.platform.create_app(name, validate_branch(branch), boot_timeout)

    async def update_app(self, name: str, body: AppUpdate) -> records.App:
        platform = self.platform
        if body.branch is not None:
            validate_branch(body.branch)
        if body.release_command:
            validate_release_command(body.release_command)
        changes = body.model_dump(exclude_none=True)
        if "redirect_https" in changes:
            changes["redirect_https"] = {"on": True, "off": False, "auto": None}[changes["redirect_https"]]
        if "hsts" in changes:
            changes["hsts"] = changes["hsts"] == "on"
        https_changed = "redirect_https" in changes or "hsts" in changes
        if "port" in changes:
            changes["port"] = changes["port"] or None  # 0 clears the fixed port
        resized = "size" in changes and size_named(changes["size"]).name != platform.store.get_app(name).size
        updated = platform.store.update_app(name, **changes)
        if resized and updated.current_release is not None:
            await platform.restart(name, None)  # as on Heroku: new limits mean new instances
        if https_changed:
            platform.edge_sync.changed()  # the edge's flags at once; EXTERNAL_URL from the next release
        return platform.store.get_app(name)

    async def destroy_app(self, name: str, confirm: str) -> Backup | None:
        """The app and all it has; a final backup of its database first (returned, if it had one)."""
        self.platform.store.get_app(name)
        if confirm != name:
            raise InvalidInput(f"Destroying '{name}' deletes its code, releases and logs.",
                               hint=f"Confirm with `--confirm {name}`.")
        backup = await self.databases.before_app_destroyed(name)
        await self.platform.destroy_app(name)
        return backup

    async def update_config(self, name: str, set_vars: dict[str, str], unset: list[str],
                            build_time: bool = False, log: Log = quiet) -> records.Release | None:
        for key in [*set_vars, *unset]:
            validate_config_key(key)
        for key, value in set_vars.items():
            validate_config_value(key, value)
        validate_config_total(self.platform.store.get_config(name), set_vars, unset)
        return await self.platform.update_config(name, set_vars, unset, log, build_time=build_time)

    async def rollback(self, name: str, version: int | None, release_phase: bool = True,
                       log: Log = quiet) -> tuple[records.Release, int]:
        """The new release, and the version it rolled back to (None: the one before the live one)."""
        store = self.platform.store
        target = version or previous_release(store, store.get_app(name))
        return await self.platform.rollback(name, target, log, release_phase=release_phase), target

    async def scale(self, name: str, changes: dict[str, int]) -> dict[str, int]:
        """A fixed count per process type; a type that was autoscaled stops being so (as on Heroku)."""
        for process_type, count in changes.items():
            if not 0 <= count <= MAX_SCALE:
                raise InvalidInput(f"{process_type}={count}: a scale is between 0 and {MAX_SCALE}.")
        formation = formation_of(self.platform.store, await self.platform.scale(name, changes))
        autoscale = self.platform.store.get_app(name).autoscale
        if set(changes) & set(autoscale):
            self.platform.store.update_app(name, autoscale={k: v for k, v in autoscale.items() if k not in changes})
            await self.platform.autoscaling_changed(name)
        return formation

    async def autoscale(self, name: str, process_type: str, low: int, high: int, target: float) -> AutoscaleBounds:
        """Scale a process type between `low` and `high` instances on its requests in flight per instance."""
        if process_type != "web":
            raise InvalidInput(f"Only web processes autoscale ({process_type} has no requests to count).",
                               hint=f"Give {process_type} a fixed count: `shipyard scale {name} {process_type}=2`.")
        if not 0 <= low <= high <= MAX_SCALE or high < 1:
            raise InvalidInput(f"--min {low} --max {high}: the bounds are 0 ≤ min ≤ max ≤ {MAX_SCALE}, max ≥ 1.")
        if target <= 0:
            raise InvalidInput(f"--concurrency {target:g}: the requests in flight per instance must be above 0.")
        app = self.platform.store.get_app(name)
        bounds = AutoscaleBounds(low, high, float(target))
        self.platform.store.update_app(name, autoscale={**app.autoscale, process_type: bounds})
        count = formation_of(self.platform.store, app).get(process_type, 1)
        if app.current_release is not None and not low <= count <= high:
            await self.platform.scale(name, {process_type: min(max(count, low), high)})
        elif app.current_release is None:
            self.platform.store.update_app(name, formation={**app.formation, process_type: max(low, 1)})
        await self.platform.autoscaling_changed(name)
        return bounds

    async def stop_autoscaling(self, name: str, process_type: str) -> None:
        """Back to a fixed count: the one it has now."""
        autoscale = self.platform.store.get_app(name).autoscale
        if process_type not in autoscale:
            raise InvalidInput(f"{process_type} of {name} is not autoscaled.")
        self.platform.store.update_app(name, autoscale={k: v for k, v in autoscale.items() if k != process_type})
        await self.platform.autoscaling_changed(name)

    def add_domain(self, name: str, hostname: str) -> records.Domain:
        domain = self.platform.store.add_domain(name, hostname)
        self.platform.edge_sync.names_changed()
        return domain

    def remove_domain(self, name: str, hostname: str) -> None:
        self.platform.store.remove_domain(name, hostname)
        self.platform.edge_sync.names_changed()

    async def restore_backup(self, name: str, backup_id: str, confirm: str) -> None:
        if confirm != name:
            raise InvalidInput(f"Restoring replaces the data of '{name}' with the backup's.",
                               hint=f"Confirm with `--confirm {name}`.")
        await self.databases.restore(name, backup_id)

    async def destroy_database(self, name: str, confirm: str, log: Log = quiet) -> records.Release | None:
        self.databases.credentials(name)
        if confirm != name:
            raise InvalidInput(f"Destroying the database of '{name}' deletes its data.",
                               hint=f"Back it up with `shipyard db backup {name}`, then confirm with "
                                    f"`--confirm {name}`.")
        return await self.databases.destroy(name, log)
