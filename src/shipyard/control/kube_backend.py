"""The Kubernetes backend: the control plane's releases run as Deployments on the cluster KUBECONFIG names.

Builds stay on this machine, in the same sandbox as for the local backend; a release's slug is packed for the
runner image (runtime/kubernetes/slug_archive.py) and served to the cluster's pods over TLS with a per-release
token (api/slug_server.py, started by `shipyard up`). Everything the cluster is told is rendered from the
release (runtime/kubernetes/objects.py) and applied by cluster.py, which waits and judges as the local backend
does: the release command's Job must succeed before any Deployment changes, a rollout is live once every new
pod is ready, and a failed rollout puts the previous release back.

A watcher reads the app's pods every few seconds for `shipyard ps` and follows each pod's log into the app's
log, so `shipyard logs` shows what the pods print, as it shows local instances'.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shipyard.addons.postgres import KIND
from shipyard.control.backends import BackendStatus, require_release
from shipyard.control.deploys import DeployRecord, Log
from shipyard.control.slugs import prune_slugs
from shipyard.errors import DeployError, PlatformError, ShipyardError
from shipyard.release.kube_release import kube_release, pod_commands
from shipyard.release.plan import ReleaseTarget
from shipyard.runtime.kubernetes import Cluster, KubeRelease, cluster, render, rollout
from shipyard.runtime.kubernetes.names import app_labels, process_name, tls_secret_name
from shipyard.runtime.kubernetes.postgres import PostgresCluster
from shipyard.runtime.kubernetes.slug_archive import archive_for, slug_python
from shipyard.runtime.kubernetes.slug_tokens import slug_token
from shipyard.runtime.kubernetes.status import EXITED, RUNNING, InstanceState, container_phase, instance_states
from shipyard.runtime.kubernetes.workloads import FETCH_ALLOWANCE, ONE_OFF, one_off_job, restart_patch
from shipyard.runtime.supervisor import Supervisor
from shipyard.settings import Settings
from shipyard.store import records
from shipyard.store.store import Store

WATCH_EVERY = 3.0  # seconds between reads of the apps' pods (`shipyard ps`, following new pods' logs)
ONE_OFF_START_LIMIT = 600.0  # a one-off pod that has not started by then (image pull, slug fetch) is given up


class KubernetesBackend:
    name = "kubernetes"

    def __init__(self, settings: Settings, store: Store, supervisor: Supervisor,
                 target: Callable[[records.Release], ReleaseTarget], secret: bytes, ca_pem: str,
                 shared_files: Callable[[], Sequence[Path]] = tuple) -> None:
        self._settings = settings
        self._store = store
        self._supervisor = supervisor  # the apps' logs (it runs no instance with this backend)
        self._target = target
        self.slug_secret = secret  # signs each release's slug token (the slug server checks them)
        self._ca_pem = ca_pem  # what pods verify the slug server with
        # What every app may read besides its slug (the CA certificate PGSSLROOTCERT names): in each pod too.
        self._shared_files = shared_files
        self._client: Any = None
        self._server = ""
        self._states: dict[str, list[InstanceState]] = {}
        self._following: dict[str, asyncio.Task[None]] = {}  # pod → the task copying its log
        self._stream_ended: dict[str, float] = {}  # pod → when its last log stream ended
        self._watcher: asyncio.Task[None] | None = None
        self._runs: dict[str, int] = {}  # run.N numbering per app, as locally

    # Lifecycle

    async def start(self) -> None:
        kube = self._settings.kube
        if not kube.slug_url:
            raise PlatformError("The Kubernetes backend needs the URL its pods fetch slugs from.",
                                hint="Set SHIPYARD_KUBE_SLUG_URL to https://<this machine's name or address, as "
                                     "the cluster's nodes reach it>:<port of SHIPYARD_KUBE_SLUG_LISTEN, 8471>.")
        self._client = cluster.connect(kube.kubeconfig or None, kube.context or None)
        self._server = cluster.server_of(self._client)
        await cluster.reachable(self._client)
        self._watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        tasks = [*self._following.values(), *([self._watcher] if self._watcher else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()

    def status(self) -> BackendStatus:
        if self._client is None:
            return BackendStatus("backend", False, "kubernetes: not connected")
        return BackendStatus("backend", True, f"kubernetes: apps run on {self._server} (one namespace each, "
                             f"{self._cluster().namespace_prefix}<app>); their slugs are served at "
                             f"{self._settings.kube.slug_url}")

    # What the control plane asks

    async def roll_out(self, app: records.App, release: records.Release, rec: DeployRecord,
                       release_phase: bool = True) -> None:
        rec.release = release.version
        applog = self._supervisor.app_log(app.name)
        try:
            desired = await asyncio.to_thread(self.kube_release, app, release)
            if not release_phase:
                await rec.log(f"-----> Skipping the release command `{desired.release_phase_command}`, as asked")
                desired = dataclasses.replace(desired, release_command="", process_types={
                    t: c for t, c in desired.process_types.items() if t != "release"})
            previous = None
            if app.current_release is not None and app.current_release != release.version:
                previous = await self._current(app, app.current_release)
            async def release_output(line: str) -> None:  # as the local backend echoes it (oneoff.run_once)
                applog.write("app[release]", line)
                await rec.log("       " + line)
            async with rec.step("roll out"):
                await rollout.deploy(self._client, desired, previous, say=rec.log, release_output=release_output)
        except BaseException as exc:
            self._store.mark_release(app.name, release.version, "failed")
            if isinstance(exc, DeployError):
                applog.write("shipyard[api]", f"Release v{release.version} failed: {exc.message.splitlines()[0]}")
            raise
        self._store.set_current_release(app.name, release.version)
        prune_slugs(self._settings, self._store, app.name, release.version)
        await asyncio.to_thread(self._prune_archives, app.name)
        applog.write("shipyard[api]", f"Release v{release.version} is live ({release.description})")
        rec.succeeded()

    async def converge(self, app: records.App, replace: set[str], urgent: bool = False, held: bool = False) -> None:
        if app.current_release is None:
            return
        desired = await self._current(app, app.current_release)
        rendered = render(desired)
        applied = await cluster.apply(self._client, rendered.runtime)
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for process_type in sorted(replace & set(desired.running_types)):
            applied.append(await cluster.apply_one(self._client, restart_patch(desired, process_type, at),
                                                   field_manager="shipyard-restart"))
        await cluster.wait_rollouts(self._client, applied, desired.boot_timeout + FETCH_ALLOWANCE)
        await rollout.prune(self._client, desired.namespace, app.name, [*rendered.foundation, *rendered.runtime])

    async def stop_app(self, name: str) -> None:
        await cluster.delete_namespace(self._client, self._namespace(name))
        self._states.pop(name, None)
        await asyncio.to_thread(shutil.rmtree, self.archives_dir / name, True)

    async def run(self, app: records.App, command: str, echo: Log) -> int:
        """`shipyard run` as a Job of the current release: its log followed to `echo` and the app's log."""
        desired = await self._current(app, require_release(app))
        number = self._runs[app.name] = self._runs.get(app.name, 0) + 1
        name = f"run-v{desired.version}-{number}-{secrets.token_hex(3)}"
        applog, source = self._supervisor.app_log(app.name), f"run.{number}"
        applog.write(f"shipyard[{source}]", f"Starting one-off process `{command}` (Job {name})")
        await cluster.apply_one(self._client, one_off_job(desired, command, name))
        container = process_name(ONE_OFF)
        code, why = await self._until_started(desired.namespace, name, container)
        if not why:  # it runs, or ran: its whole log, followed until it ends
            async for line in cluster.stream_logs(self._client, desired.namespace, await self._pod_of(
                    desired.namespace, name), container):
                applog.write(f"app[{source}]", line)
                await echo(line)
            code, why = await self._until_exited(desired.namespace, name, container,
                                                 desired.release_timeout + FETCH_ALLOWANCE)
        if code is None:
            applog.write(f"shipyard[{source}]", f"Process did not run: {why}")
            raise DeployError(f"The one-off process did not run: {why}",
                              hint=f"`kubectl describe job {name} -n {desired.namespace}` says more.")
        applog.write(f"shipyard[{source}]", f"Process exited with status {code}")
        return code

    # What runs

    def pods(self, name: str) -> list[InstanceState]:
        """The app's pods at the watcher's last read."""
        return list(self._states.get(name, []))

    def app_state(self, app: records.App) -> str:
        states = {s.state for s in self._states.get(app.name, []) if s.release == app.current_release}
        if app.current_release is None:
            return "new"
        return next((s for s in ("up", "crashed", "starting") if s in states), "down")

    # Helpers

    async def _current(self, app: records.App, version: int) -> KubeRelease:
        return await asyncio.to_thread(self.kube_release, app, self._store.get_release(app.name, version))

    def _namespace(self, name: str) -> str:
        return f"{self._cluster().namespace_prefix}{name}"

    def _cluster(self) -> Cluster:
        kube = self._settings.kube
        blocked = () if kube.open_egress else Cluster().blocked_cidrs
        return Cluster(keda=kube.keda, ingress_class=kube.ingress_class, ingress_namespace=kube.ingress_namespace,
                       blocked_cidrs=blocked, cert_issuer=kube.cert_issuer)

    def kube_release(self, app: records.App, release: records.Release) -> KubeRelease:
        """The release as the cluster runs it (packs its slug for the pods the first time: call in a thread)."""
        target = self._target(release)
        slug = Path(release.build.slug_path)
        archive = archive_for(slug, self.archives_dir)
        image = self._settings.kube.runner_image or f"python:{slug_python(slug)}-slim"
        url = f"{self._settings.kube.slug_url.rstrip('/')}/slugs/{app.name}/v{release.version}.tar.gz"
        target = dataclasses.replace(target, process_types=pod_commands(target.process_types))
        domains = [d.hostname for d in self._store.list_domains(app.name)]
        # With a cert-manager issuer every name gets a certificate; without one, the app is served over HTTP.
        issued = self._settings.kube.cert_issuer
        tls = {name: tls_secret_name(name) for name in (target.hostname, *domains)} if issued else {}
        files = {str(path): path.read_text() for path in self._shared_files() if path.is_file()}
        pg = self.postgres_cluster()
        database = self._store.get_addon(app.name, KIND)
        return kube_release(target, image=image, slug_url=url, domains=domains, tls_secrets=tls,
                            slug_token=slug_token(self.slug_secret, app.name, release.version),
                            # The build's own release command is in the target's process types (a release
                            # never runs another release's migrations: control/releases.py).
                            autoscale=app.autoscale.get("web"),
                            slug_sha256=archive.sha256, slug_ca=self._ca_pem, cluster=self._cluster(), files=files,
                            database=pg.peer() if database and database.get("host") == pg.host else None)

    def postgres_cluster(self) -> PostgresCluster:
        """Where CloudNativePG keeps the apps' databases, where it is installed (control/cloud_databases.py)."""
        kube = self._settings.kube
        return PostgresCluster(kube.postgres_namespace, instances=kube.postgres_instances,
                               storage=kube.postgres_storage)

    @property
    def client(self) -> Any:
        """The cluster's API client (lightkube's AsyncClient), once `start` has connected."""
        return self._client

    @property
    def archives_dir(self) -> Path:
        """The slugs packed for pods, a folder per app (slug_archive.archive_for)."""
        return self._settings.data_dir / "cache" / "kube-slugs"

    def archive_path(self, name: str, version: int) -> Path | None:
        """The slug server's lookup: release vN's packed slug, packed now if it was not yet."""
        try:
            release = self._store.get_release(name, version)
        except Exception:  # noqa: BLE001 - no such app or release: the server answers 404
            return None
        if not Path(release.build.slug_path).is_dir():
            return None
        return archive_for(Path(release.build.slug_path), self.archives_dir).path

    def _prune_archives(self, name: str) -> None:
        """Archives of slugs that are no longer kept (prune_slugs removed them)."""
        kept = {Path(r.build.slug_path).name for r in self._store.list_releases(name)
                if Path(r.build.slug_path).is_dir()}
        for packed in (self.archives_dir / name).glob("*.tar.gz*"):
            if packed.name.split(".", 1)[0] not in kept:
                packed.unlink(missing_ok=True)

    async def _watch(self) -> None:
        while True:
            for app in self._store.list_apps():
                if app.current_release is None or app.damage:
                    continue
                namespace = self._namespace(app.name)
                try:
                    found = await cluster.pods(self._client, namespace, app_labels(app.name))
                except ShipyardError:
                    continue  # the API server is away or refused: `ps` shows the last read until it answers
                except Exception as exc:  # noqa: BLE001 - a bug must not stop `ps` for good: said, and on
                    self._supervisor.app_log(app.name).write("shipyard[api]", f"Reading the pods failed: {exc!r}")
                    continue
                self._states[app.name] = instance_states(found)
                for pod in found:
                    self._follow(app.name, namespace, pod)
                present = {pod["metadata"]["name"] for pod in found}
                for name in [n for n, task in self._following.items() if task.done() and n not in present]:
                    del self._following[name]
                    self._stream_ended.pop(name, None)
            await asyncio.sleep(WATCH_EVERY)

    def _follow(self, app: str, namespace: str, pod: dict[str, Any]) -> None:
        """Copy a running pod's log into the app's log. A stream that ended while the pod is still there (its
        container crashed and kubelet restarted it, or the API server closed it) is followed again from where
        it ended (to the second: a line may show twice, none is lost)."""
        meta, kind = pod["metadata"], pod["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")
        name = meta["name"]
        following = self._following.get(name)
        if (following is not None and not following.done()) or kind in ("", ONE_OFF):
            return
        container = process_name(kind)
        if container_phase(pod, container)[0] != RUNNING:
            return
        source = f"app[{kind}.{name.rsplit('-', 1)[-1]}]"
        ended = self._stream_ended.get(name)
        since = None if ended is None else max(1, math.ceil(time.time() - ended))

        async def copy() -> None:
            applog = self._supervisor.app_log(app)
            try:
                with contextlib.suppress(ShipyardError):
                    async for line in cluster.stream_logs(self._client, namespace, name, container, since=since):
                        applog.write(source, line)
            finally:
                self._stream_ended[name] = time.time()
        self._following[name] = asyncio.create_task(copy())

    async def _pod_of(self, namespace: str, job: str) -> str:
        found = await cluster.pods(self._client, namespace, {"job-name": job})
        return str(found[0]["metadata"]["name"]) if found else ""

    async def _until_started(self, namespace: str, job: str, container: str) -> tuple[int | None, str]:
        """(None, "") once the one-off's container runs or ran; (None, why) when it never will."""
        return await self._until(namespace, job, container, (RUNNING, EXITED), ONE_OFF_START_LIMIT, "start")

    async def _until_exited(self, namespace: str, job: str, container: str,
                            limit: float) -> tuple[int | None, str]:
        return await self._until(namespace, job, container, (EXITED,), limit, "end")

    async def _until(self, namespace: str, job: str, container: str, states: tuple[str, ...], limit: float,
                     verb: str) -> tuple[int | None, str]:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            for pod in await cluster.pods(self._client, namespace, {"job-name": job}):
                state, code, why = container_phase(pod, container)
                if state == EXITED and code is None:
                    return None, why  # failed before the command ran
                if state in states:
                    return code, ""
            await asyncio.sleep(1.0)
        return None, f"its pod did not {verb} within {limit:g} s"
