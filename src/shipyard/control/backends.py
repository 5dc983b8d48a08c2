"""Where an app's instances run: the one interface between the control plane and a runtime.

Everything above it — receive, build, releases, config, the API, the CLI and the dashboard — is the same for
every backend; a backend takes a release that exists in the store and makes it run (release phase first,
health-gated, the previous release serving until the new one is live), changes how many instances run,
runs one-off commands, and says what runs. Two exist: `LocalBackend`, sandboxed processes on this machine
behind its own edge (control/rollout.py, runtime/supervisor.py), and `KubernetesBackend`, Deployments on a
cluster behind its ingress controller (control/kube_backend.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shipyard.control.deploys import DeployRecord, Log
from shipyard.control.edge_sync import at_zero
from shipyard.control.rollout import Rollout
from shipyard.edge.haproxy import Edge
from shipyard.errors import InvalidInput
from shipyard.release.plan import ReleaseTarget, one_off_spec
from shipyard.runtime.confinement import Confinement
from shipyard.runtime.console import Console
from shipyard.runtime.kubernetes.status import InstanceState
from shipyard.runtime.logs import AppLog
from shipyard.runtime.oneoff import run_once
from shipyard.runtime.spec import InstanceSpec
from shipyard.runtime.supervisor import Supervisor
from shipyard.settings import Settings
from shipyard.store import records
from shipyard.store.store import Store


@dataclass(frozen=True)
class BackendStatus:
    """What `shipyard doctor` shows of the backend."""

    name: str
    healthy: bool
    detail: str


class Backend(Protocol):
    name: str

    async def start(self) -> None:
        """Connect to where instances run; raises PlatformError (said at `shipyard up`) when it cannot."""

    async def stop(self) -> None: ...

    async def roll_out(self, app: records.App, release: records.Release, rec: DeployRecord,
                       release_phase: bool = True) -> None:
        """Make `release` the app's live one: its release command, then its instances, health-gated. A failure
        raises DeployError (ReleasePhaseFailed for the release command) and leaves the previous release serving;
        the release is then marked failed."""

    async def converge(self, app: records.App, replace: set[str], urgent: bool = False, held: bool = False) -> None:
        """Run the app's current release at its formation; `replace`: process types restarted, health-gated."""

    async def stop_app(self, name: str) -> None:
        """Stop and remove everything the app runs (the app is being destroyed)."""

    async def run(self, app: records.App, command: str, echo: Log) -> int:
        """A one-off process of the app's current release (`shipyard run`); its output goes to `echo` and the
        app's log; returns its exit code."""

    def status(self) -> BackendStatus: ...

    def app_state(self, app: records.App) -> str:
        """What a user can expect at the app's URL now: new, up, crashed, starting, down (and locally zero,
        frozen, unreachable)."""
        ...

    def pods(self, name: str) -> list[InstanceState]:
        """The app's pods, for `shipyard ps` (the local backend's instances are the supervisor's)."""
        ...


class LocalBackend:
    """Sandboxed processes on this machine, health-gated behind the platform's own edge."""

    name = "local"

    def __init__(self, settings: Settings, store: Store, rollout: Rollout, supervisor: Supervisor,
                 confinement: Confinement, target: Callable[[records.Release], ReleaseTarget], edge: Edge) -> None:
        self._settings = settings
        self._edge = edge
        self._store = store
        self._rollout = rollout
        self._supervisor = supervisor
        self._confinement = confinement
        self._target = target
        self._runs: dict[str, int] = {}  # run.N numbering per app

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def roll_out(self, app: records.App, release: records.Release, rec: DeployRecord,
                       release_phase: bool = True) -> None:
        await self._rollout.roll_out(app, release, rec, release_phase=release_phase)

    async def converge(self, app: records.App, replace: set[str], urgent: bool = False, held: bool = False) -> None:
        await self._rollout.converge(app, replace, urgent=urgent, held=held)

    async def stop_app(self, name: str) -> None:
        await self._supervisor.stop_app(name, self._settings.drain_grace)

    async def run(self, app: records.App, command: str, echo: Log) -> int:
        spec, applog = self._one_off(app.name, command)
        code, _ = await run_once(spec, applog, echo, self._confinement)
        applog.write(f"shipyard[{spec.name}]", f"Process exited with status {code}")
        return code

    async def console(self, name: str, command: str, *, columns: int, rows: int, term: str) -> Console:
        """`run` attached to a terminal (this backend's alone)."""
        spec, _ = self._one_off(name, command, interactive=True)
        return await Console.start(spec, self._confinement, columns=columns, rows=rows, term=term)

    def _one_off(self, name: str, command: str, interactive: bool = False) -> tuple[InstanceSpec, AppLog]:
        app = self._store.get_app(name)
        version = require_release(app)
        self._runs[name] = self._runs.get(name, 0) + 1
        spec = one_off_spec(self._target(self._store.get_release(name, version)), command, self._runs[name])
        applog = self._supervisor.app_log(name)
        # An interactive session's output goes to its terminal only (it is full of terminal controls).
        attached = " attached to a terminal" if interactive else ""
        applog.write(f"shipyard[{spec.name}]", f"Starting one-off process `{command}`{attached}")
        return spec, applog

    def app_state(self, app: records.App) -> str:
        """`up` only if the edge is serving too."""
        instances = self._supervisor.instances(app.name)
        states = {i.state for i in instances}
        if app.current_release is None:
            return "new"
        if at_zero(app) and not instances:
            return "zero"  # scaled to zero when idle: the next request starts it
        if self._supervisor.frozen(app.name):
            return "frozen"
        if "up" in states and not self._edge.serving and any(i.routable for i in instances):
            return "unreachable"
        for state in ("up", "crashed", "starting"):
            if state in states:
                return state
        return "down"

    def pods(self, name: str) -> list[InstanceState]:
        return []

    def status(self) -> BackendStatus:
        return BackendStatus("backend", True, "local: apps run as sandboxed processes on this machine, behind its "
                             "edge (`shipyard up --backend kubernetes` runs them on a cluster)")


def require_release(app: records.App) -> int:
    """The app's current release, for a one-off process to run in."""
    if app.current_release is None:
        raise InvalidInput(f"{app.name} has no release to run commands in yet.",
                           hint="Deploy it with `git push` first.")
    return app.current_release
