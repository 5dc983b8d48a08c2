"""The supervisor: which instances run for each app, and their lifecycle.

It only runs what it is told to (by the deployer and the reconciler) and
reports state changes through `on_change`, from which the edge's route table
is recomputed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

from shipyard.runtime.confinement import Confinement
from shipyard.runtime.instance import Instance
from shipyard.runtime.logs import AppLog, AppLogs
from shipyard.runtime.readiness import LivenessRules, ReadinessRules
from shipyard.runtime.spec import InstanceSpec

URGENT_QUICK_FOR = 1.0  # seconds an urgent instance is observed every few ms (requests wait on it)


class Supervisor:
    def __init__(self, logs_dir: Path, scratch_dir: Path, on_change: Callable[[], None],
                 confinement: Confinement, readiness: ReadinessRules | None = None,
                 liveness: LivenessRules | None = None) -> None:
        self.confinement = confinement
        self.readiness = readiness or ReadinessRules()
        self.liveness = liveness or LivenessRules()
        self.logs = AppLogs(logs_dir)
        self._scratch_dir = scratch_dir
        self._on_change = on_change
        self._active: dict[str, list[Instance]] = {}
        self._booting: set[Instance] = set()
        self._draining: set[Instance] = set()

    def app_log(self, app: str) -> AppLog:
        return self.logs.get(app)

    async def boot(self, spec: InstanceSpec) -> Instance:
        """Start an instance that is not routed yet; DeployError if it never listens."""
        instance = await self.start(spec)
        await self.until_ready(instance)
        return instance

    async def start(self, spec: InstanceSpec, urgent: bool = False) -> Instance:
        """Spawn an instance's process (not routed, not yet health-checked).

        `urgent`: requests wait on it (a wake from zero, a scale-up under load). Its release passed the full
        gate (settle period included) when it went live, so its first healthy answer is enough, and it is
        observed every few milliseconds meanwhile.
        """
        readiness = dataclasses.replace(self.readiness, settle=0.0, quick_for=URGENT_QUICK_FOR) if urgent else self.readiness
        instance = Instance(spec, self.app_log(spec.app), self._scratch_dir, self._on_change, self.confinement,
                            readiness, self.liveness)
        self._booting.add(instance)
        try:
            await instance.spawn()
        except BaseException:
            self._booting.discard(instance)
            await instance.stop(grace=1)
            raise
        return instance

    async def until_ready(self, instance: Instance) -> None:
        """Wait for a started instance's health gate; it is stopped if it fails (DeployError)."""
        try:
            await instance.until_ready()
        except BaseException:
            await instance.stop(grace=1)
            raise
        finally:
            self._booting.discard(instance)

    def activate(self, app: str, instances: list[Instance]) -> list[Instance]:
        """Make `instances` the app's running set; returns the ones they replace (to be drained)."""
        old = self._active.get(app, [])
        self._active[app] = instances
        self._draining.update(i for i in old if i not in instances)
        self._on_change()
        return old

    async def retire(self, instances: list[Instance], grace: float) -> None:
        """Stop instances replaced by `activate` once the edge no longer sends them requests."""
        await stop_all(instances, grace)
        self._draining.difference_update(instances)

    def instance_at(self, app: str, address: str) -> Instance | None:
        """The app's instance (running or draining) listening at `address`, as the edge names it."""
        candidates = [*self._active.get(app, []), *(i for i in self._draining if i.spec.app == app)]
        return next((i for i in candidates if i.address == address), None)

    def instances(self, app: str) -> list[Instance]:
        return list(self._active.get(app, []))

    def starting(self, app: str, release: int | None) -> list[Instance]:
        """The app's instances of `release` still booting (a scale-up, a wake from zero, a restart), not routed
        yet; a deploy's new release is not among them until it is live."""
        return sorted((i for i in self._booting if i.spec.app == app and i.spec.release == release
                       and i.state == "starting"), key=lambda i: (i.spec.process_type, i.spec.index))

    def frozen(self, app: str) -> bool:
        """Its web instances are frozen (idle): a request must thaw them first."""
        web = [i for i in self._active.get(app, []) if i.spec.process_type == "web"]
        return bool(web) and all(i.frozen for i in web)

    async def freeze(self, app: str) -> bool:
        """Freeze the app's web instances; False if this machine cannot (no cgroup freezer)."""
        web = [i for i in self._active.get(app, []) if i.spec.process_type == "web" and i.state == "up"]
        return all([await i.freeze() for i in web])  # none up: nothing to freeze, and no sign of a missing freezer

    async def thaw(self, app: str) -> None:
        for instance in self._active.get(app, []):
            if instance.frozen:
                await instance.thaw()

    def apps(self) -> list[str]:
        return sorted(self._active)

    def routable_addresses(self, app: str) -> tuple[str, ...]:
        """The app's up web instances; with none up, those restarting right after a crash, so the edge holds
        requests (retrying their port) until they listen instead of answering 503."""
        instances = self._active.get(app, [])
        up = tuple(i.address for i in instances if i.routable)
        return up or tuple(i.address for i in instances if i.holding and i.spec.process_type == "web")

    async def stop_app(self, app: str, grace: float) -> None:
        old = self._active.pop(app, [])
        self._on_change()
        await stop_all(old, grace)
        await self.logs.forget(app)

    async def shutdown(self, grace: float) -> None:
        everything = [i for group in self._active.values() for i in group] + list(self._booting)
        everything += [i for i in self._draining if i.state != "stopped"]
        self._active.clear()
        try:
            await stop_all(everything, grace)
        finally:
            await self.logs.close()  # after the instances: their last lines and exit statuses are written


async def stop_all(instances: list[Instance], grace: float) -> None:
    if instances:
        await asyncio.gather(*(i.stop(grace) for i in instances))
