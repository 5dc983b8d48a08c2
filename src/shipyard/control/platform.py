"""The control plane's core: turns the store's desired state into running releases.

`deploy` is the one way through the system (build → release → run → route);
`reconcile` re-creates what the store says after a restart; the edge is kept
in step with the supervisor by one background task.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from shipyard.addons.postgres import ENV_KEYS as DATABASE_KEYS
from shipyard.control.deploys import DeployRecord
from shipyard.control.slugs import adopt_slugs, prune_slugs, release_target
from shipyard.buildpack.builder import BuildRequest, build_slug, inspect_source
from shipyard.buildpack.manifest import Manifest
from shipyard.buildpack.python import discover_interpreters
from shipyard.edge.caddy import Edge
from shipyard.edge.routes import AppRoute
from shipyard.errors import DeployError, InvalidInput, ReleasePhaseFailed, ShipyardError
from shipyard.git.repos import Repos
from shipyard.release.plan import ReleaseTarget, instance_specs, one_off_spec, release_phase_spec
from shipyard.runtime.confinement import Confinement
from shipyard.runtime.console import Console
from shipyard.runtime.logs import AppLog
from shipyard.runtime.oneoff import run_once
from shipyard.runtime.spec import InstanceSpec
from shipyard.runtime.supervisor import Supervisor, stop_all
from shipyard.settings import Settings
from shipyard.store import records
from shipyard.store.store import Store

Log = Callable[[str], Awaitable[None]]
# Config vars the builder reads (the rest stay out of the build, as on the seeds' platforms).
BUILD_KNOBS = ("APP_RUN", "APP_MODULE", "GUNICORN_APP_MODULE", "GUNICORN_CONFIG", "PIP_INDEX_URL", "PIP_UPGRADE",
               "DISABLE_COLLECTSTATIC")


class Platform:
    def __init__(self, settings: Settings, store: Store, edge: Edge, confinement: Confinement) -> None:
        self.settings = settings
        self.store = store
        self.edge = edge
        edge.on_restart = self._routes_changed  # a restarted edge starts empty: re-apply every route
        self.confinement = confinement
        # Files every app may read besides its own, e.g. the CA certificate its PGSSLROOTCERT names (set by
        # the platform's start, never from a config var: a tenant must not choose what gets bound in).
        self.shared_files: tuple[Path, ...] = ()
        self.repos = Repos(settings.repos_dir)
        self.supervisor = Supervisor(settings.logs_dir, settings.tmp_dir / "instances", self._routes_changed,
                                     confinement)
        self._locks: dict[str, asyncio.Lock] = {}
        self._edge_dirty = asyncio.Event()
        self._edge_task: asyncio.Task[None] | None = None
        self._retry_tasks: dict[str, asyncio.Task[None]] = {}
        self.interpreters = discover_interpreters()
        self._runs: dict[str, int] = {}  # run.N numbering per app

    # Lifecycle

    async def start(self) -> None:
        self.store.fail_unfinished()
        if self.confinement.sandboxed:
            for app in self.store.list_apps():
                await asyncio.to_thread(adopt_slugs, self.settings, self.store, app)
        await self.edge.start()
        self._edge_task = asyncio.create_task(self._edge_loop())
        await self.sync_edge()
        for app in self.store.list_apps():
            if app.current_release is not None:
                self._retry_tasks[app.name] = asyncio.create_task(self._restore(app))

    async def shutdown(self) -> None:
        for task in self._retry_tasks.values():
            task.cancel()
        await self.supervisor.shutdown(self.settings.drain_grace)
        if self._edge_task:
            self._edge_task.cancel()
        await self.edge.stop()

    async def _restore(self, app: records.App) -> None:
        """Bring an app back at its current release after a platform restart, retrying while it fails."""
        delay = 2.0
        while True:
            try:
                release = self.store.get_release(app.name, app.current_release or 0)
                instances = [await self.supervisor.boot(s) for s in instance_specs(self._target(release))]
                self.supervisor.activate(app.name, instances)
                self.supervisor.app_log(app.name).write("shipyard[api]", f"Restored v{release.version}")
                return
            except ShipyardError as exc:
                self.supervisor.app_log(app.name).write("shipyard[api]", f"Could not restore: {exc.message}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60)

    # Apps

    def create_app(self, name: str, branch: str = "main", boot_timeout: int = 240) -> records.App:
        app = self.store.create_app(name, branch=branch, boot_timeout=boot_timeout)
        self.repos.create(name)
        self._routes_changed()
        return app

    async def destroy_app(self, name: str) -> None:
        self.store.get_app(name)
        async with self._lock(name):
            if task := self._retry_tasks.pop(name, None):
                task.cancel()
            await self.supervisor.stop_app(name, self.settings.drain_grace)
            self.store.delete_app(name)
            await self.sync_edge()
            self.repos.delete(name)
            for folder in (self.settings.slugs_dir / name, self.settings.logs_dir / name,
                           self.settings.uv_cache_dir / name):
                shutil.rmtree(folder, ignore_errors=True)

    def app_state(self, app: records.App) -> str:
        states = {i.state for i in self.supervisor.instances(app.name)}
        if app.current_release is None:
            return "new"
        for state in ("up", "crashed", "starting"):
            if state in states:
                return state
        return "down"

    # Deploys

    async def deploy(self, name: str, source_dir: Path, commit: str, log: Log,
                     received: tuple[float, float] | None = None, summary: str = "") -> records.Release:
        """Build the pushed source into a slug, make release vN, and roll it out.

        `received`: when the push began and when its source was ready, recorded as the first step.
        `summary`: who made the commit and what it says, for `shipyard releases`.
        """
        if self._lock(name).locked():
            await log(f"-----> Another deploy of {name} is in progress: this push waits for it to finish")
        async with self._lock(name):
            app = self.store.get_app(name)
            rec = DeployRecord(self.store, name, f"Push of {commit[:7]}", log)
            if received:
                rec.finished_step("receive", *received, [f"Received {commit[:7]} and exported its files"])
            config = self.store.get_config(name)
            build_keys = self.store.build_time_keys(name) | set(BUILD_KNOBS) | set(DATABASE_KEYS)
            previous = self.store.latest_build(name)
            request = BuildRequest(
                source_dir=source_dir, slug_dir=self.settings.slugs_dir / name / f"{int(time.time() * 1000)}-{commit[:12]}",
                venvs_dir=self.settings.slugs_dir / name / "venvs",
                # Per app: a build that poisons its cache poisons only its own app's next builds.
                uv_cache_dir=self.settings.uv_cache_dir / name,
                interpreters=self.interpreters, env={k: v for k, v in config.items() if k in build_keys},
                start_command=app.start_command, build_command=app.build_command, fixed_port=app.port,
                build_uid=self.settings.build_uid(app.id), runtime_uid=self.settings.app_uid(app.id),
                scratch_dir=self.settings.tmp_dir / "builds", shared_files=self.shared_files,
                limits=self.confinement.cgroups,
                previous_slug=Path(previous.slug_path) if previous and Path(previous.slug_path).is_dir() else None)
            async with rec.step("pre-flight"):
                detection = await inspect_source(request, rec.log)
            async with rec.step("build"):
                slug = await build_slug(request, detection, rec.log)
            build = self.store.add_build(name, commit, str(slug.path), slug.manifest.to_json())
            release = self.store.add_release(name, build.id, config, f"Deploy {commit[:7]}{summary}")
            await self._roll_out(app, release, rec)
            return release

    async def update_config(self, name: str, set_vars: dict[str, str], unset: list[str],
                            log: Log, build_time: bool = False, reason: str = "") -> records.Release | None:
        """Store the new config; if the app runs, release it with the same slug (a restart with the new env)."""
        async with self._lock(name):
            app = self.store.get_app(name)
            config = self.store.update_config(name, set_vars, unset, build_time=build_time)
            if app.current_release is None:
                return None
            current = self.store.get_release(name, app.current_release)
            changed = ", ".join([*set_vars, *unset])
            verb = "Set" if set_vars else "Unset"
            description = reason or f"{verb} {changed} config vars"
            release = self.store.add_release(name, current.build.id, config, description)
            try:
                await self._roll_out(app, release, DeployRecord(self.store, name, description, log))
            except DeployError as exc:
                undo = f"`shipyard config unset {name} {' '.join(set_vars)}`" if set_vars else "`shipyard config set`"
                raise type(exc)(exc.message, hint=f"{exc.hint or ''}\nThe change stays in the config (the next push "
                                f"uses it); undo it with {undo}.".strip()) from None
            return release

    async def rollback(self, name: str, version: int, log: Log, release_phase: bool = True) -> records.Release:
        """A new release with an earlier release's slug and config: no rebuild."""
        async with self._lock(name):
            app = self.store.get_app(name)
            earlier = self.store.get_release(name, version)
            if not Path(earlier.build.slug_path).is_dir():
                raise InvalidInput(f"v{version}'s slug is no longer kept (the newest {self.settings.releases_kept} "
                                   "releases are).", hint=f"Pick a newer release from `shipyard releases {name}`.")
            release = self.store.add_release(name, earlier.build.id, earlier.config, f"Rollback to v{version}")
            try:
                await self._roll_out(app, release, DeployRecord(self.store, name, f"Rollback to v{version}", log),
                                     release_phase=release_phase)
            except ReleasePhaseFailed as exc:
                raise ReleasePhaseFailed(exc.message, hint=(
                    f"Nothing changed: v{app.current_release} keeps serving; the command's output is in "
                    f"`shipyard logs {name}`. A rollback runs v{version}'s release command against the database "
                    "as it is now, and older code may not know a newer migration (Alembic: \"Can't locate "
                    f"revision\"). To run v{version}'s code without it: `shipyard rollback {name} v{version} "
                    "--skip-release-phase`.")) from None
            current = self.store.get_config(name)
            self.store.update_config(name, earlier.config, [k for k in current if k not in earlier.config])
            return release

    async def scale(self, name: str, changes: dict[str, int]) -> records.App:
        """Change how many instances of each process type run; the release stays the same."""
        async with self._lock(name):
            app = self.store.get_app(name)
            if app.current_release is not None:
                types = Manifest.from_json(self.store.get_release(name, app.current_release).build.manifest).process_types
                unknown = sorted(set(changes) - (set(types) - {"release"}))
                if unknown:
                    raise InvalidInput(f"{name} has no process type {', '.join(unknown)}.",
                                       hint=f"Its types: {', '.join(sorted(set(types) - {'release'}))} (from the Procfile).")
            app = self.store.update_app(name, formation={**app.formation, **changes})
            await self._converge(app, replace=set())
            return app

    async def restart(self, name: str, process_type: str | None) -> None:
        """New instances of the current release replace the running ones, health-gated, without downtime."""
        async with self._lock(name):
            app = self.store.get_app(name)
            types = {i.spec.process_type for i in self.supervisor.instances(name)}
            await self._converge(app, replace={process_type} if process_type else types)

    async def run(self, name: str, command: str, echo: Log) -> int:
        """A one-off process with the current release's slug and environment; returns its exit code."""
        spec, applog = self._one_off(name, command)
        code, _ = await run_once(spec, applog, echo, self.confinement)
        applog.write(f"shipyard[{spec.name}]", f"Process exited with status {code}")
        return code

    async def console(self, name: str, command: str, columns: int, rows: int, term: str) -> Console:
        """`run` attached to a terminal: the caller carries the bytes and calls `console_ended`."""
        spec, _ = self._one_off(name, command, interactive=True)
        return await Console.start(spec, self.confinement, columns=columns, rows=rows, term=term)

    def console_ended(self, name: str, console: Console, code: int) -> None:
        self.supervisor.app_log(name).write(f"shipyard[{console.name}]", f"Process exited with status {code}")

    def _one_off(self, name: str, command: str, interactive: bool = False) -> tuple[InstanceSpec, AppLog]:
        app = self.store.get_app(name)
        if app.current_release is None:
            raise InvalidInput(f"{name} has no release to run commands in yet.", hint="Deploy it with `git push` first.")
        self._runs[name] = self._runs.get(name, 0) + 1
        spec = one_off_spec(self._target(self.store.get_release(name, app.current_release)), command, self._runs[name])
        applog = self.supervisor.app_log(name)
        # An interactive session's output goes to its terminal only (it is full of terminal controls).
        attached = " attached to a terminal" if interactive else ""
        applog.write(f"shipyard[{spec.name}]", f"Starting one-off process `{command}`{attached}")
        return spec, applog

    async def _converge(self, app: records.App, replace: set[str]) -> None:
        """Make the running instances match the formation: keep, start (health-gated) and drain."""
        if app.current_release is None:
            return
        release = self.store.get_release(app.name, app.current_release)
        desired = {s.name: s for s in instance_specs(self._target(release))}
        current = {i.spec.name: i for i in self.supervisor.instances(app.name)}
        keep = [i for n, i in current.items() if n in desired and i.spec.process_type not in replace]
        started = []
        try:
            for name, spec in desired.items():
                if name not in {i.spec.name for i in keep}:
                    started.append(await self.supervisor.boot(spec))
        except DeployError:
            await stop_all(started, grace=1)
            raise
        old = self.supervisor.activate(app.name, keep + started)
        await self.sync_edge()
        retired = [i for i in old if i not in keep]
        if retired:
            asyncio.create_task(self._drain(retired))

    async def _roll_out(self, app: records.App, release: records.Release, rec: DeployRecord,
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
        await log(f"-----> Releasing v{release.version}: starting web process (waiting up to {app.boot_timeout} s "
                  "for it to listen on $PORT)")
        if app.port and self.supervisor.instances(app.name):
            # Two instances cannot share a fixed port: this one switch has a gap instead of an overlap.
            await log(f"-----> The app listens on fixed port {app.port}: stopping the running release first")
            await self.supervisor.retire(self.supervisor.activate(app.name, []), self.settings.drain_grace)
            await self.sync_edge()
        started = []
        try:
            async with rec.step("start instances"):
                for spec in instance_specs(self._target(release)):
                    started.append(await self.supervisor.start(spec))
            async with rec.step("health check"):
                # All at once: web=3 boots in the time of one. The first failure (in start order) reports.
                outcomes = await asyncio.gather(*(self.supervisor.until_ready(i) for i in started),
                                                return_exceptions=True)
                if failure := next((o for o in outcomes if isinstance(o, BaseException)), None):
                    raise failure
        except DeployError as exc:
            await stop_all(started, grace=1)
            self.store.mark_release(app.name, release.version, "failed")
            applog.write("shipyard[api]", f"Release v{release.version} failed: {exc.message.splitlines()[0]}")
            if app.port and app.current_release and not self.supervisor.instances(app.name):
                self._retry_tasks[app.name] = asyncio.create_task(self._restore(self.store.get_app(app.name)))
            raise DeployError(f"Release v{release.version} failed: {exc.message}", hint=exc.hint) from None
        if task := self._retry_tasks.pop(app.name, None):
            task.cancel()
        async with rec.step("switch"):
            old = self.supervisor.activate(app.name, started)
            await self.sync_edge()
            self.store.set_current_release(app.name, release.version)
            prune_slugs(self.settings, self.store, app.name, release.version)
            applog.write("shipyard[api]", f"Release v{release.version} is live ({release.description})")
            await log(f"-----> v{release.version} is live at {self.settings.app_url(app.name)}")
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

    async def _drain_recorded(self, old: list, rec: DeployRecord) -> None:  # type: ignore[type-arg]
        async with rec.step("drain"):
            await self._drain(old)
        rec.succeeded()

    async def _drain(self, old: list) -> None:  # type: ignore[type-arg]
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

    def _target(self, release: records.Release) -> ReleaseTarget:
        return release_target(self.settings, self.store.get_app(release.app), release, self.interpreters,
                              self.shared_files)

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    # Edge reconciliation

    def _routes_changed(self) -> None:
        self._edge_dirty.set()

    def route_inputs(self) -> list[AppRoute]:
        return [AppRoute(app=a.name, hostname=self.settings.app_hostname(a.name),
                         upstreams=self.supervisor.routable_addresses(a.name)) for a in self.store.list_apps()]

    async def sync_edge(self) -> None:
        self._edge_dirty.clear()
        await self.edge.apply(self.route_inputs())

    async def _edge_loop(self) -> None:
        while True:
            await self._edge_dirty.wait()
            try:
                await self.sync_edge()
            except ShipyardError:
                await asyncio.sleep(1)
                self._edge_dirty.set()
