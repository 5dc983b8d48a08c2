"""The autoscaler: once a second, each autoscaled web process's requests in flight (from the edge), a KPA
decision (`shipyard.control.kpa`), and the formation changed when the decision differs — through the same
health-gated scale as `shipyard ps:scale`, so a new instance takes requests only once it answers.

The apps' bounds are re-read from the store every few seconds (or at once after a change), not every tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psutil

from shipyard.control.kpa import Decision, Observation, Policy, ScalerMemory, decide
from shipyard.edge.haproxy import Edge
from shipyard.errors import ShipyardError
from shipyard.runtime.limits import size_named
from shipyard.runtime.supervisor import Supervisor
from shipyard.store import records
from shipyard.store.store import Store

Scale = Callable[[str, dict[str, int]], Awaitable[object]]
DECISIONS_KEPT = 20
REFRESH_EVERY = 5.0  # seconds between reads of the apps' bounds from the store
MEMORY_RESERVE = 256 * 2**20  # left to the platform, the edge and the database when counting what fits


def memory_capacity(available: int, instance_bytes: int, running: int, reserve: int = MEMORY_RESERVE) -> int:
    """How many instances of this size the machine can hold: the running ones plus what fits in what is free."""
    return running + max(0, (available - reserve) // max(instance_bytes, 1))


@dataclass(frozen=True)
class Windows:
    """Seconds of the KPA's windows (settings: SHIPYARD_AUTOSCALE_*)."""

    stable: float = 60.0
    panic: float = 6.0
    scale_down_delay: float = 30.0


@dataclass(frozen=True)
class ScalingRecord:
    """A decision as `shipyard apps info` shows it: when (wall clock), and with its inputs."""

    at: float
    decision: Decision


class Autoscaler:
    def __init__(self, store: Store, supervisor: Supervisor, edge: Edge, scale: Scale,
                 deploying: Callable[[str], bool], windows: Windows = Windows(), interval: float = 1.0,
                 requests_total: Callable[[str], int] = lambda app: 0, zero_after: float = 1800.0,
                 freeze_after: float | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 available_memory: Callable[[], int] = lambda: psutil.virtual_memory().available) -> None:
        self._store = store
        self._supervisor = supervisor
        self._edge = edge
        self._scale = scale
        self._deploying = deploying
        self._windows = windows
        self._requests_total = requests_total
        self._zero_after = zero_after
        self._freeze_after = freeze_after
        self._active: dict[str, tuple[int, float]] = {}  # app → (requests answered, when that count last changed)
        self._interval = interval
        self._clock = clock
        self._wall = wall
        self._available_memory = available_memory
        self._apps: dict[str, records.App] = {}
        self._read_at = float("-inf")
        self._observations: dict[str, deque[Observation]] = {}
        self._memory: dict[str, ScalerMemory] = {}
        self._decisions: dict[str, deque[ScalingRecord]] = {}
        self._scaling: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._scaling.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    def changed(self) -> None:
        """An app's bounds changed: read them at the next tick."""
        self._read_at = float("-inf")

    def decisions(self, app: str) -> list[ScalingRecord]:
        """The app's recent decisions that changed its count, and the latest one, oldest first."""
        return list(self._decisions.get(app, ()))

    def woke(self, app: str) -> None:
        """The activator started the app for a request: its idle time starts again now."""
        self._active[app] = (self._requests_total(app), self._clock())
        self.changed()

    def forget(self, app: str) -> None:
        for table in (self._observations, self._memory, self._decisions, self._active):
            table.pop(app, None)

    async def run(self) -> None:
        reported = False
        while True:
            try:
                await self.tick()
                reported = False
            except Exception as exc:  # noqa: BLE001 — the loop must outlive a bad tick (a busy store, say)
                if not reported:
                    logging.getLogger(__name__).warning("autoscaler: %s", exc)
                    reported = True
            await asyncio.sleep(self._interval)

    async def tick(self) -> None:
        now = self._clock()
        if now - self._read_at >= REFRESH_EVERY:
            apps = await asyncio.to_thread(self._store.list_apps)
            self._apps = {a.name: a for a in apps if "web" in a.autoscale and not a.damage}
            self._read_at = now
            for gone in set(self._observations) - set(self._apps):
                self.forget(gone)
        if not self._apps:
            return
        try:
            busy = await self._edge.upstream_requests()
        except ShipyardError:
            return  # the edge is restarting: no figures this second, no decision on a false zero
        available = self._available_memory()  # once a tick, not once an app: it reads /proc/meminfo
        for app in self._apps.values():
            try:
                self._step(app, busy, now, available)
            except ValueError as exc:  # bounds the store should never have held: this app only is skipped
                self._supervisor.app_log(app.name).write("shipyard[autoscaler]", f"Not autoscaled: {exc}")
                self._apps = {n: a for n, a in self._apps.items() if n != app.name}
                break

    def _step(self, app: records.App, busy: dict[str, int], now: float, available: int) -> None:
        bounds = app.autoscale["web"]
        instances = [i for i in self._supervisor.instances(app.name) if i.spec.process_type == "web"]
        ready = [i for i in instances if i.routable]
        observations = self._observations.setdefault(app.name, deque())
        observations.append(Observation(at=now, in_flight=float(sum(busy.get(i.address, 0) for i in instances))))
        total = self._requests_total(app.name)
        if observations[-1].in_flight or self._active.get(app.name, (None, 0.0))[0] != total:
            self._active[app.name] = (total, now)
        idle = now - self._active[app.name][1]
        # The KPA never goes below one instance; zero is this loop's call, on requests answered (a short request
        # is rarely caught in flight by a once-a-second sample).
        policy = Policy(min_instances=max(bounds.min, 1), max_instances=bounds.max, target=bounds.target,
                        stable_window=self._windows.stable, panic_window=self._windows.panic,
                        scale_down_delay=self._windows.scale_down_delay)
        while observations and observations[0].at <= now - policy.stable_window:
            observations.popleft()
        if app.current_release is None or self._deploying(app.name) or app.name in self._scaling:
            return  # nothing to scale yet, or a deploy or a scale is under way: decide once it is done
        formation = app.formation.get("web", 1)
        if formation == 0 or self._supervisor.frozen(app.name):
            if formation and bounds.min == 0 and idle >= self._zero_after:
                self._to_zero(app.name, len(instances), idle)  # frozen ones count: they are what stops
            return  # at rest: the activator wakes it
        if bounds.min == 0 and idle >= self._zero_after and not observations[-1].in_flight:
            self._to_zero(app.name, len(ready), idle)
            return
        if (bounds.min == 0 and self._freeze_after is not None and idle >= self._freeze_after
                and not observations[-1].in_flight):
            self._record(app.name, self._rest(len(ready), len(ready), (
                f"no request for {idle:.0f} s (≥ {self._freeze_after:g} s): frozen (no CPU); the next request "
                "thaws it in milliseconds")))
            self._scaling[app.name] = asyncio.create_task(self._freeze(app.name))
            return
        capacity = memory_capacity(available, size_named(app.size).memory_bytes, len(instances))
        decision = decide(policy, list(observations), len(ready), self._memory.get(app.name, ScalerMemory()), now,
                          capacity)
        self._memory[app.name] = decision.memory
        self._record(app.name, decision)
        if decision.desired != formation:
            self._scaling[app.name] = asyncio.create_task(self._apply(app.name, decision.desired))

    def _to_zero(self, app: str, current: int, idle: float) -> None:
        self._record(app, self._rest(current, 0, (f"no request for {idle:.0f} s (≥ {self._zero_after:g} s): to "
                                                  "zero (no process, no memory); the next request starts it")))
        self._scaling[app] = asyncio.create_task(self._apply(app, 0))

    def _rest(self, current: int, desired: int, reason: str) -> Decision:
        return Decision(at=self._clock(), current=current, desired=desired, stable_concurrency=0.0,
                        panic_concurrency=0.0, panicking=False, reason=reason, memory=ScalerMemory())

    async def _freeze(self, name: str) -> None:
        try:
            if not await self._supervisor.freeze(name):
                self._freeze_after = None  # no freezer here (see `shipyard doctor`): idle apps go to zero only
        finally:
            self._scaling.pop(name, None)

    def _record(self, app: str, decision: Decision) -> None:
        kept = self._decisions.setdefault(app, deque(maxlen=DECISIONS_KEPT))
        record = ScalingRecord(at=self._wall(), decision=decision)
        last = kept[-1].decision if kept else None
        if last and (last.desired, last.current, last.panicking) == (decision.desired, decision.current,
                                                                     decision.panicking):
            kept[-1] = record  # the same call again: keep the latest inputs, not a second line
        else:
            kept.append(record)

    async def _apply(self, name: str, count: int) -> None:
        try:
            await self._scale(name, {"web": count})
        except ShipyardError as exc:
            self._supervisor.app_log(name).write("shipyard[autoscaler]", f"Scaling web to {count} failed: {exc.message}")
        finally:
            self._scaling.pop(name, None)
            self.changed()  # the formation changed in the store: read it back
