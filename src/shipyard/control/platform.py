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

from shipyard.control.backends import Backend, LocalBackend
from shipyard.control.deploys import DeployRecord
from shipyard.control.kube_backend import KubernetesBackend
from shipyard.control.releases import release_command_of
from shipyard.control.rollout import Rollout
from shipyard.control.upgrades import move_databases_to_client_host
from shipyard.control.slugs import adopt_slugs, release_target
from shipyard.buildpack.builder import BuildRequest, build_slug, inspect_source
from shipyard.buildpack.manifest import Manifest
from shipyard.buildpack.python import discover_interpreters
from shipyard.edge.haproxy import Edge
from shipyard.addons.tls import CertificateAuthority
from shipyard.control.certificates import Certificates, acme_issuer
from shipyard.control.edge_sync import EdgeSync, at_zero
from shipyard.control.autoscaler import Autoscaler, Windows
from shipyard.control.wake import Waker
from shipyard.edge.activator import Activator
from shipyard.control.metrics_history import MetricsHistory
from shipyard.control.requests import RequestRecorder
from shipyard.errors import DeployError, InvalidInput, ReleasePhaseFailed, ShipyardError
from shipyard.git.repos import Repos
from shipyard.release.plan import ReleaseTarget, instance_specs
from shipyard.runtime.confinement import Confinement
from shipyard.runtime.console import Console
from shipyard.runtime.disk import room_for_push
from shipyard.runtime.kubernetes.status import InstanceState
from shipyard.runtime.readiness import LivenessRules, ReadinessRules
from shipyard.runtime.wake_speed import WakeSupport, detect_wake_support, favor_cgroup_moves
from shipyard.runtime.supervisor import Supervisor
from shipyard.settings import Settings
from shipyard.stopping import StopSteps
from shipyard.store import records
from shipyard.store.secrets import load_or_create_key
from shipyard.store.store import Store

Log = Callable[[str], Awaitable[None]]


class Platform:
    def __init__(self, settings: Settings, store: Store, edge: Edge, confinement: Confinement,
                 ca: CertificateAuthority | None = None) -> None:
        self.settings = settings
        self.store = store
        self.edge = edge
        edge.on_restart = self._routes_changed  # a restarted edge starts empty: re-apply every route
        self.confinement = confinement
        # Files every app may read besides its own, e.g. the CA certificate its PGSSLROOTCERT names (set by
        # the platform's start, never from a config var: a tenant must not choose what gets bound in).
        self.shared_files: tuple[Path, ...] = ()
        self.wake_support: list[WakeSupport] = []  # what makes waking from zero faster here (`shipyard doctor`)
        self.repos = Repos(settings.repos_dir)
        self.supervisor = Supervisor(
            settings.logs_dir, settings.tmp_dir / "instances", self._routes_changed, confinement,
            ReadinessRules(settle=settings.readiness_settle, no_answer_limit=settings.hang_limit),
            LivenessRules(interval=settings.liveness_interval, failures=settings.liveness_failures))
        self._locks: dict[str, asyncio.Lock] = {}
        self._retry_tasks: dict[str, asyncio.Task[None]] = {}
        self.interpreters = discover_interpreters()
        self.requests = RequestRecorder(self.supervisor, edge)
        self.metrics_history = MetricsHistory(store, self.requests.metrics, self.supervisor, settings.metrics_interval)
        self.waker = Waker(self.supervisor, lambda name, changes: self.scale(name, changes, urgent=True, held=True),
                           lambda name: self.autoscaler.woke(name))
        self.activator = Activator(edge.app_for_host, self.waker.wake, settings.wake_timeout)
        # Its scale-ups are urgent: the load that asked for them waits on the new instances.
        self.autoscaler = Autoscaler(store, self.supervisor, edge, lambda name, to: self.scale(name, to, urgent=True),
                                     self.deploying, Windows(settings.autoscale_stable_window,
                                                             settings.autoscale_panic_window,
                                                             settings.autoscale_scale_down_delay),
            requests_total=self.requests.metrics.requests_total, zero_after=settings.scale_to_zero_after,
            freeze_after=settings.freeze_after if settings.freeze_after < settings.scale_to_zero_after else None)
        self.edge_sync = EdgeSync(settings, store, edge, self.supervisor, Certificates(settings, store, edge, ca,
                                                                                         acme_issuer(settings, edge)))
        self.rollout = Rollout(settings, store, self.supervisor, edge, confinement, self._target, self.sync_edge,
                               self._restore_later, self._stop_restoring, lambda: self.edge_sync.synced())
        self.local = settings.backend == "local"
        self._local_backend = LocalBackend(settings, store, self.rollout, self.supervisor, confinement, self._target,
                                           edge)
        self.backend: Backend = self._local_backend
        if not self.local:
            self.backend = KubernetesBackend(settings, store, self.supervisor, self._target,
                                             load_or_create_key(settings.data_dir / "slug-signing.key"),
                                             ca.cert_file.read_text() if ca else "", lambda: self.shared_files)

    # Lifecycle

    async def start(self) -> None:
        await asyncio.to_thread(self._recover)
        await self.backend.start()
        if not self.local:
            self.metrics_history.start()
            return
        favor = self.settings.favor_cgroup_moves
        problem = (await asyncio.to_thread(favor_cgroup_moves, self.settings.cgroup_moves_mount)) if favor else None
        self.wake_support = await asyncio.to_thread(detect_wake_support, problem, not favor)
        for name in await asyncio.to_thread(move_databases_to_client_host, self.settings, self.store):
            self.supervisor.app_log(name).write("shipyard[api]", "The database's host is now localhost (DATABASE_URL, "
                                                "PGHOST), which every libpq verifies; the next release uses it")
        apps = self.store.list_apps()
        for app in apps:
            if app.damage:  # listed (and routed to a 503), never started: the others start as usual
                self.supervisor.app_log(app.name).write("shipyard[api]", f"Not started: {app.damage}")
        if self.confinement.sandboxed:
            for app in apps:
                if not app.damage:
                    await asyncio.to_thread(adopt_slugs, self.settings, self.store, app)
        await self.edge.start()
        self.edge_sync.activator = await self.activator.start()
        self.edge_sync.start()
        self.metrics_history.start()
        self.autoscaler.start()
        self.edge_sync.names_changed()
        await self.sync_edge()
        for app in apps:
            if app.current_release is not None and not app.damage:
                self._retry_tasks[app.name] = asyncio.create_task(self._restore(app))

    def _recover(self) -> None:
        """What a platform that was killed (kill -9, power loss) left half-done: deploys it was running are
        `interrupted` (the previous release is restored below and keeps serving), and the scratch space of
        builds and instances is emptied. Its processes died with it (sandboxes die with their parent; the
        cgroups of any left over are swept before this)."""
        self.store.fail_unfinished(
            "Shipyard stopped while this deploy was running (it was killed or the machine restarted); the release "
            "did not go live and the previous one kept serving. Push again (or repeat the change) to deploy it.")
        for scratch in (self.settings.tmp_dir / "builds", self.settings.tmp_dir / "instances",
                        *self.settings.tmp_dir.glob("src-*")):  # sources exported by pushes (git/hook.py)
            shutil.rmtree(scratch, ignore_errors=True)

    async def shutdown(self) -> list[str]:
        """Stop the apps and the edge. Never raises: each step runs even if one before it failed (a full disk,
        a process already gone), and what failed is returned, one line each."""
        steps = StopSteps()
        for task in self._retry_tasks.values():
            task.cancel()
        await steps.run("Stopping the metrics history", self.metrics_history.stop)
        await steps.run(f"Stopping the {self.backend.name} backend", self.backend.stop)
        if not self.local:
            return steps.failures
        await steps.run("Stopping the autoscaler", self.autoscaler.stop)
        await steps.run("Stopping the activator", self.activator.stop)
        await steps.run("Stopping the apps", lambda: self.supervisor.shutdown(self.settings.drain_grace))
        # A loop that had died (a route it could not write) is reaped here: its error is reported once, not as
        # "Task exception was never retrieved" with a traceback at exit.
        await steps.run("Updating the edge's routes", self.edge_sync.stop)
        await steps.run("Stopping the edge", self.edge.stop)
        return steps.failures

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

    def _restore_later(self, name: str) -> None:
        self._retry_tasks[name] = asyncio.create_task(self._restore(self.store.get_app(name)))

    def _stop_restoring(self, name: str) -> None:
        if task := self._retry_tasks.pop(name, None):
            task.cancel()

    # Apps

    def create_app(self, name: str, branch: str = "main", boot_timeout: int = 240) -> records.App:
        app = self.store.create_app(name, branch=branch, boot_timeout=boot_timeout)
        self.repos.create(name)
        self.edge_sync.names_changed()
        return app

    async def destroy_app(self, name: str) -> None:
        self.store.get_app(name)
        async with self._lock(name):
            self._stop_restoring(name)
            await self.backend.stop_app(name)
            self.store.delete_app(name)
            if self.local:
                await self.sync_edge()
                self.edge_sync.names_changed()
            self.requests.forget(name)
            self.autoscaler.forget(name)
            self.repos.delete(name)
            for folder in (self.settings.slugs_dir / name, self.settings.logs_dir / name,
                           self.settings.uv_cache_dir / name):
                shutil.rmtree(folder, ignore_errors=True)

    def pods(self, name: str) -> list[InstanceState]:
        """The app's pods, on the Kubernetes backend (none on the local one: see `supervisor.instances`)."""
        return self.backend.pods(name)

    def deploying(self, name: str) -> bool:
        """Whether a deploy, config change, rollback or scale of the app is under way."""
        return name in self._locks and self._locks[name].locked()

    def app_state(self, app: records.App) -> str:
        """What a user can expect at the app's URL now."""
        return self.backend.app_state(app)

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
            previous = self.store.latest_build(name)
            request = BuildRequest(
                source_dir=source_dir, slug_dir=self.settings.slugs_dir / name / f"{int(time.time() * 1000)}-{commit[:12]}",
                venvs_dir=self.settings.slugs_dir / name / "venvs",
                # Per app: a build that poisons its cache poisons only its own app's next builds.
                uv_cache_dir=self.settings.uv_cache_dir / name,
                # Every config var, the add-on's DATABASE_URL and PG* too, as on Heroku and Render: a build
                # command may migrate; the build stays confined as its app's build uid (buildpack/sandbox.py).
                interpreters=self.interpreters, env=dict(config),
                start_command=app.start_command, build_command=app.build_command, fixed_port=app.port,
                build_uid=self.settings.build_uid(app.id), runtime_uid=self.settings.app_uid(app.id),
                scratch_dir=self.settings.tmp_dir / "builds", shared_files=self.shared_files,
                limits=self.confinement.cgroups,
                previous_slug=Path(previous.slug_path) if previous and Path(previous.slug_path).is_dir() else None)
            if at_zero(app):  # a push deploys one instance, health-checked; idle, it goes back to zero
                app = self.store.update_app(name, formation={**app.formation, "web": 1})
            async with rec.step("pre-flight"):
                # Rejected before anything is written when the build would not fit (a full disk).
                await asyncio.to_thread(room_for_push, self.settings.data_dir, source_dir, request.previous_slug)
                detection = await inspect_source(request, rec.log)
            async with rec.step("build"):
                slug = await build_slug(request, detection, rec.log)
                manifest = await release_command_of(app, slug.manifest, rec.log)
            build = self.store.add_build(name, commit, str(slug.path), manifest.to_json())
            release = self.store.add_release(name, build.id, config, f"Deploy {commit[:7]}{summary}")
            await self.backend.roll_out(app, release, rec)
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
            record = DeployRecord(self.store, name, description, log)
            try:
                await self.backend.roll_out(app, release, record)
            except DeployError as exc:
                undo = f"`shipyard config unset {name} {' '.join(set_vars)}`" if set_vars else "`shipyard config set`"
                final = type(exc)(exc.message, hint=f"{exc.hint or ''}\nThe change stays in the config (the next push "
                                  f"uses it); undo it with {undo}.".strip())
                record.failed(final)
                raise final from None
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
            record = DeployRecord(self.store, name, f"Rollback to v{version}", log)
            try:
                await self.backend.roll_out(app, release, record, release_phase=release_phase)
            except ReleasePhaseFailed as exc:
                final = ReleasePhaseFailed(exc.message, hint=(
                    f"Nothing changed: v{app.current_release} keeps serving; the command's output is in "
                    f"`shipyard logs {name}`. A rollback runs v{version}'s release command against the database "
                    "as it is now, and older code may not know a newer migration (Alembic: \"Can't locate "
                    f"revision\"). To run v{version}'s code without it: `shipyard rollback {name} v{version} "
                    "--skip-release-phase`."))
                record.failed(final)
                raise final from None
            current = self.store.get_config(name)
            self.store.update_config(name, earlier.config, [k for k in current if k not in earlier.config])
            return release

    async def scale(self, name: str, changes: dict[str, int], urgent: bool = False,
                    held: bool = False) -> records.App:
        """Change how many instances of each process type run; the release stays the same. `urgent` and `held`:
        see Rollout.converge (the autoscaler's scale-ups are urgent; a wake from zero is both)."""
        async with self._lock(name):
            app = self.store.get_app(name)
            if app.current_release is not None:
                types = Manifest.from_json(self.store.get_release(name, app.current_release).build.manifest).process_types
                unknown = sorted(set(changes) - (set(types) - {"release"}))
                if unknown:
                    raise InvalidInput(f"{name} has no process type {', '.join(unknown)}.",
                                       hint=f"Its types: {', '.join(sorted(set(types) - {'release'}))} (from the Procfile).")
            before = app.formation
            app = self.store.update_app(name, formation={**before, **changes})
            try:
                await self.backend.converge(app, replace=set(), urgent=urgent, held=held)
            except DeployError:
                # Health-gated: an instance that cannot start leaves the formation as it was, so the next
                # deploy does not fail on it.
                self.store.update_app(name, formation=before)
                raise
            return app

    async def autoscaling_changed(self, name: str) -> None:
        """An app's autoscaling bounds changed: the local autoscaler reads them on its next tick; a cluster gets
        its HorizontalPodAutoscaler (or KEDA ScaledObject) applied now."""
        if self.local:
            self.autoscaler.changed()
            return
        async with self._lock(name):
            await self.backend.converge(self.store.get_app(name), replace=set())

    async def restart(self, name: str, process_type: str | None) -> None:
        """New instances of the current release replace the running ones, health-gated, without downtime."""
        async with self._lock(name):
            app = self.store.get_app(name)
            running = {i.spec.process_type for i in self.supervisor.instances(name)}
            types = running if self.local else {"web", *app.formation}
            await self.backend.converge(app, replace={process_type} if process_type else types)

    async def run(self, name: str, command: str, echo: Log) -> int:
        """A one-off process with the current release's slug and environment; returns its exit code."""
        return await self.backend.run(self.store.get_app(name), command, echo)

    async def console(self, name: str, command: str, columns: int, rows: int, term: str) -> Console:
        """`run` attached to a terminal: the caller carries the bytes and calls `console_ended`."""
        if not self.local:
            raise InvalidInput("Consoles are not available on the Kubernetes backend yet.",
                               hint=f"Run the command without a terminal (`shipyard run {name} -- COMMAND`), or "
                                    f"`kubectl exec -it -n shipyard-{name} deploy/web -- bash`.")
        return await self._local_backend.console(name, command, columns=columns, rows=rows, term=term)

    def console_ended(self, name: str, console: Console, code: int) -> None:
        self.supervisor.app_log(name).write(f"shipyard[{console.name}]", f"Process exited with status {code}")

    def _target(self, release: records.Release) -> ReleaseTarget:
        return release_target(self.settings, self.store.get_app(release.app), release, self.interpreters,
                              self.shared_files)

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    # Edge reconciliation

    def _routes_changed(self) -> None:
        self.edge_sync.changed()

    async def sync_edge(self) -> None:
        await self.edge_sync.sync()
