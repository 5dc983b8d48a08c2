"""Health-gated switches between sets of instances: a new release, a scale change, a restart.

New instances start and must pass readiness before any request reaches them; only then does the edge
route to them and the old ones drain. Whatever fails on the way leaves the running release serving.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from shipyard.buildpack.fitting import quiet
from shipyard.control.deploys import DeployRecord, Log
from shipyard.control.slugs import prune_slugs
from shipyard.edge.haproxy import Edge
from shipyard.errors import DeployError, ReleasePhaseFailed, ServerErrorAtStart, ShipyardError
from shipyard.release.plan import (ReleaseTarget, instance_specs, migration_check_spec, release_phase_spec,
                                   unapplied_migrations, unscaled_types)
from shipyard.runtime.confinement import Confinement
from shipyard.runtime.instance import Instance
from shipyard.runtime.oneoff import run_once
from shipyard.runtime.spec import InstanceSpec
from shipyard.runtime.supervisor import Supervisor, stop_all
from shipyard.settings import Settings
from shipyard.store import records
from shipyard.store.store import Store

EDGE_WAIT = 5.0  # how long a switch waits for a restarting edge before saying it is down
MIGRATION_CHECK_LIMIT = 30.0  # `manage.py migrate --plan` after a 500: Django's start plus one query


class Rollout:
    def __init__(self, settings: Settings, store: Store, supervisor: Supervisor, edge: Edge, confinement: Confinement,
                 target: Callable[[records.Release], ReleaseTarget], sync_edge: Callable[[], Awaitable[None]],
                 restore_later: Callable[[str], None], stop_restoring: Callable[[str], None],
                 edge_synced: Callable[[], Awaitable[None]]) -> None:
        self.settings = settings
        self.store = store
        self.supervisor = supervisor
        self.edge = edge
        self.confinement = confinement
        self._target = target
        self.sync_edge = sync_edge
        # A scale's routes: a sync shared with the scales at the same time (EdgeSync.synced).
        self.edge_synced = edge_synced
        # A fixed-port app has a gap between its releases; if the new one fails, the old one is restored.
        self._restore_later = restore_later
        self._stop_restoring = stop_restoring

    async def converge(self, app: records.App, replace: set[str], urgent: bool = False, held: bool = False) -> None:
        """Make the running instances match the formation: keep, start (health-gated) and drain.

        `urgent`: requests wait on the new instances (a scale-up under load, a wake): see Supervisor.start.
        `held`: the activator holds the requests and forwards them to the instance itself, so the edge's routes
        follow in the background instead of delaying them.
        """
        if app.current_release is None:
            return
        release = self.store.get_release(app.name, app.current_release)
        desired = {s.name: s for s in instance_specs(self._target(release))}
        current = {i.spec.name: i for i in self.supervisor.instances(app.name)}
        keep = [i for n, i in current.items() if n in desired and i.spec.process_type not in replace]
        started: list[Instance] = []
        try:
            for name, spec in desired.items():
                if name not in {i.spec.name for i in keep}:
                    started.append(await self.supervisor.start(spec, urgent=urgent))
            # Health-checked together, as a deploy's: web=5 boots in the time of one (the autoscaler's panic
            # needs them all at once). The first failure, in start order, is the one reported.
            outcomes = await asyncio.gather(*(self.supervisor.until_ready(i) for i in started), return_exceptions=True)
            failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
            if failure is not None:
                raise failure
        except DeployError:
            await stop_all(started, grace=1)
            raise
        old = self.supervisor.activate(app.name, keep + started)  # the edge is told (in the background)
        if not held:
            await self.edge_synced()
        retired = [i for i in old if i not in keep]
        if retired:
            asyncio.create_task(self._drain(retired))

    async def roll_out(self, app: records.App, release: records.Release, rec: DeployRecord,
                        release_phase: bool = True) -> None:
        """Health-gated switch: start the new instances, route to them, then drain the old ones.

        Whatever goes wrong on the way (also a bug, a full disk, a cancelled request), a release that did not
        go live is marked failed, never left `deploying`.
        """
        try:
            await self._switch(app, release, rec, release_phase)
        except BaseException:
            if self.store.get_app(app.name).current_release != release.version:
                self.store.mark_release(app.name, release.version, "failed")
            raise

    async def _switch(self, app: records.App, release: records.Release, rec: DeployRecord,
                      release_phase: bool) -> None:
        applog = self.supervisor.app_log(app.name)
        log = rec.log
        rec.release = release.version
        if (release_command := release_phase_spec(self._target(release))) and not release_phase:
            await log(f"-----> Skipping the release command `{release_command.command}`, as asked")
        elif release_command:
            async with rec.step("release phase"):
                await self._release_phase(app, release, release_command, log)
        target = self._target(release)
        for process_type in unscaled_types(target.process_types, app.formation):
            await log(f"-----> {process_type} is not running: scale it with shipyard ps:scale {app.name} "
                      f"{process_type}=1")
        await log(f"-----> Releasing v{release.version}: starting web process (waiting up to {app.boot_timeout} s "
                  "for it to listen on $PORT)")
        if app.port and self.supervisor.instances(app.name):
            # Two instances cannot share a fixed port: this one switch has a gap instead of an overlap.
            await log(f"-----> The app listens on fixed port {app.port}: stopping the running release first")
            await self.supervisor.retire(self.supervisor.activate(app.name, []), self.settings.drain_grace)
            await self.sync_edge()
        started: list[Instance] = []
        starting = ""  # the process type whose failure rejects the release
        try:
            async with rec.step("start instances"):
                for spec in instance_specs(target):
                    starting = spec.process_type
                    started.append(await self.supervisor.start(spec))
            async with rec.step("health check"):
                # All at once: web=3 boots in the time of one. The first failure (in start order) reports.
                outcomes = await asyncio.gather(*(self.supervisor.until_ready(i) for i in started),
                                                return_exceptions=True)
                failed = next(((i, o) for i, o in zip(started, outcomes) if isinstance(o, BaseException)), None)
                if failed:
                    starting = failed[0].spec.process_type
                    raise failed[1]
        except DeployError as exc:
            await stop_all(started, grace=1)
            self.store.mark_release(app.name, release.version, "failed")
            applog.write("shipyard[api]", f"Release v{release.version} failed: {exc.message.splitlines()[0]}")
            if app.port and app.current_release and not self.supervisor.instances(app.name):
                self._restore_later(app.name)
            hint = without_it(exc.hint, app.name, starting)
            if isinstance(exc, ServerErrorAtStart):
                hint = await self._unapplied_migrations_hint(app, target, log) or hint
            final = DeployError(f"Release v{release.version} failed: {exc.message}", hint=hint)
            rec.failed(final)
            raise final from None
        self._stop_restoring(app.name)
        async with rec.step("switch"):
            old = self.supervisor.activate(app.name, started)
            await self.sync_edge()
            self.store.set_current_release(app.name, release.version)
            prune_slugs(self.settings, self.store, app.name, release.version)
            if await self.edge.until_serving(EDGE_WAIT):
                applog.write("shipyard[api]", f"Release v{release.version} is live ({release.description})")
                await log(f"-----> v{release.version} is live at {self.settings.app_url(app.name)}")
            else:
                # Never "live" while nothing reaches it: the edge restarts by itself and then routes to it.
                applog.write("shipyard[api]", f"Release v{release.version} is running, but the edge is down")
                await log(f"-----> v{release.version} is running, but the edge is down (it restarts by itself): "
                          f"{self.settings.app_url(app.name)} answers once it is back; see `shipyard doctor`")
        if old:
            asyncio.create_task(self._drain_recorded(old, rec))
        else:
            rec.succeeded()

    async def _release_phase(self, app: records.App, release: records.Release, spec: InstanceSpec, log: Log) -> None:
        """The Procfile's `release:` command, with the new release's environment; failing aborts the release."""
        await log(f"-----> Running release command: {spec.command}")
        code, recent = await run_once(spec, self.supervisor.app_log(app.name), log, self.confinement)
        if code != 0:
            self.store.mark_release(app.name, release.version, "failed")
            self.supervisor.app_log(app.name).write("shipyard[api]", f"Release v{release.version} failed: "
                                                    f"release command exited with code {code}")
            raise ReleasePhaseFailed(
                f"Release v{release.version} failed: the release command `{spec.command}` exited with code {code}.",
                hint="Its output is above. Nothing changed: the previous release keeps serving. Fix the command "
                     "(e.g. the migration) and push again.")
        await log("-----> Release command succeeded")

    async def _unapplied_migrations_hint(self, app: records.App, target: ReleaseTarget, log: Log) -> str | None:
        """Why a Django app answers 500 when nothing ran `migrate` (its DEBUG-off logs say nothing)."""
        spec = migration_check_spec(target)
        if spec is None:
            return None
        await log("-----> Checking for Django migrations not applied yet (manage.py migrate --plan)")

        code, recent = await run_once(spec, self.supervisor.app_log(app.name), quiet, self.confinement,
                                      limit=MIGRATION_CHECK_LIMIT)
        missing = unapplied_migrations(recent) if code == 0 else []
        if not missing:
            return None
        shown = ("…, " if len(missing) > 3 else "") + ", ".join(missing[-3:])  # the app's own come last
        return (f"The database lacks Django migrations ({shown}): nothing ran `migrate`. Run them in the release "
                f"phase of every deploy: `shipyard apps set {app.name} --release-command \"python manage.py migrate "
                "--noinput\"` (or a Procfile line `release: python manage.py migrate --noinput`), then deploy again.")

    async def _drain_recorded(self, old: list[Instance], rec: DeployRecord) -> None:
        async with rec.step("drain"):
            await self._drain(old)
        rec.succeeded()

    async def _drain(self, old: list[Instance]) -> None:
        """Wait for in-flight requests to the old instances to finish (bounded), then stop them."""
        addresses = {i.address for i in old}
        deadline = time.monotonic() + self.settings.drain_grace
        while time.monotonic() < deadline:
            try:
                busy = await self.edge.upstream_requests()
            except ShipyardError:
                break
            if not any(busy.get(a, 0) for a in addresses):
                break
            await asyncio.sleep(0.1)
        await self.supervisor.retire(old, self.settings.drain_grace)


def without_it(hint: str | None, app: str, process_type: str) -> str | None:
    """A background type the user scaled up that fails rejects the release like web does (it would crash-loop
    once live); the hint also says how to release without it for now."""
    if process_type in ("", "web"):
        return hint
    scale = (f"To release without {process_type} for now: `shipyard ps:scale {app} {process_type}=0`, then "
             "deploy again.")
    return f"{hint}\n{scale}" if hint else scale
