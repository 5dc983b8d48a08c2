"""The metrics history behind the dashboard's charts: every few seconds, what each app's edge counters gained and
what its instances use (CPU, memory) go into the app's minute bucket; about hourly, finished hours are rolled
up and old buckets pruned (store/metrics.py). Reading turns buckets into chart series (metrics_series.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shipyard.control.metrics_series import WINDOWS, AppSeries, build_series
from shipyard.edge.metrics import AppFigures, EdgeMetrics
from shipyard.runtime.cgroups import Cgroup
from shipyard.runtime.supervisor import Supervisor
from shipyard.runtime.usage import Usage, instance_usage
from shipyard.store.metrics import HOUR, MINUTE, STATUS_CLASSES, Bucket
from shipyard.store.store import Store

# CPU over less wall time than this is mostly noise (two samples a moment apart): the next sample measures it.
MIN_CPU_SPAN = 0.5
ROLLUP_DELAY = 60  # seconds past the hour: the hour's last samples are in by then

UsageReader = Callable[[Cgroup | None, int | None], Usage]
T = TypeVar("T")


@dataclass(frozen=True)
class _Process:
    """An instance as seen from the event loop: what a thread needs to measure it."""

    app: str
    name: str
    key: tuple[int, int | None]  # a new process (restart, new release's web.1) starts a new CPU baseline
    web_up: bool
    cgroup: Cgroup | None
    pid: int | None


@dataclass(frozen=True)
class _CpuMark:
    key: tuple[int, int | None]
    at: float
    cpu_seconds: float


@dataclass
class _Minute:
    """The gauges of an app's current minute: the most web instances up, and every CPU/memory figure seen."""

    start: int
    instances: int = 0
    cpu: dict[str, list[float]] = field(default_factory=dict)
    memory: dict[str, list[float]] = field(default_factory=dict)

    def copy(self) -> _Minute:
        return _Minute(self.start, self.instances, {n: list(v) for n, v in self.cpu.items()},
                       {n: list(v) for n, v in self.memory.items()})

    def usage(self) -> dict[str, tuple[float | None, float | None]]:
        names = {*self.cpu, *self.memory}
        return {n: (_mean(self.cpu.get(n, [])), _mean(self.memory.get(n, []))) for n in names}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def counter_delta(current: AppFigures, previous: AppFigures | None) -> AppFigures:
    """What the counters gained since `previous`. Counters that went back (the platform restarted, or the app
    was destroyed and made again) restarted from zero: all they hold is new, never a negative difference."""
    if previous is None or _went_back(current, previous):
        return current
    return AppFigures(by_class={c: n - previous.by_class.get(c, 0) for c, n in current.by_class.items()},
                      buckets=[n - previous.buckets[i] if i < len(previous.buckets) else n
                               for i, n in enumerate(current.buckets)],
                      seconds=max(0.0, current.seconds - previous.seconds),
                      bytes_sent=current.bytes_sent - previous.bytes_sent)


def _went_back(current: AppFigures, previous: AppFigures) -> bool:
    return (current.bytes_sent < previous.bytes_sent
            or any(current.by_class.get(c, 0) < n for c, n in previous.by_class.items())
            or any(n < previous.buckets[i] for i, n in enumerate(current.buckets) if i < len(previous.buckets)))


class MetricsHistory:
    def __init__(self, store: Store, edge: EdgeMetrics, supervisor: Supervisor, interval: float,
                 read_usage: UsageReader = instance_usage, clock: Callable[[], float] = time.time,
                 report: Callable[[str], None] | None = None) -> None:
        self._store = store
        self._edge = edge
        self._supervisor = supervisor
        self._interval = interval
        self._read_usage = read_usage
        self._clock = clock
        self._report = report or logging.getLogger(__name__).warning
        # What the last sample that was written saw: the next one counts what came since.
        self._counts = edge.snapshot()
        self._cpu: dict[tuple[str, str], _CpuMark] = {}
        self._minutes: dict[str, _Minute] = {}
        self._task: asyncio.Task[None] | None = None
        self._failure: str | None = None

    # Sampling

    def sample(self, now: float) -> None:
        """One step, synchronously: add to each app's minute bucket what came since the last step."""
        self._record(now, self._edge.snapshot(), self._processes())

    def _processes(self) -> list[_Process]:
        """Every running instance (read in the event loop, which changes them)."""
        found = []
        for app in self._supervisor.apps():
            for instance in self._supervisor.instances(app):
                if instance.state != "stopped":
                    found.append(_Process(app, instance.spec.name, (id(instance), instance.pid),
                                          instance.routable, instance.cgroup, instance.pid))
        return found

    def _record(self, now: float, counts: dict[str, AppFigures], processes: Sequence[_Process]) -> None:
        """Measure the instances, write the minute buckets, and only then keep what was seen as the next step's
        baseline: a write that failed is counted again by the next step, not lost."""
        start = int(now) - int(now) % MINUTE
        minutes = {app: m.copy() for app, m in self._minutes.items() if m.start == start}
        marks: dict[tuple[str, str], _CpuMark] = {}
        for process in processes:
            minute = minutes.setdefault(process.app, _Minute(start))
            usage = self._read_usage(process.cgroup, process.pid)
            cores, mark = self._cores(process, usage, now)
            if mark is not None:
                marks[(process.app, process.name)] = mark
            if cores is not None:
                minute.cpu.setdefault(process.name, []).append(cores)
            if usage.memory_bytes is not None:
                minute.memory.setdefault(process.name, []).append(float(usage.memory_bytes))
        for app in {p.app for p in processes}:
            minutes[app].instances = max(minutes[app].instances, sum(p.web_up for p in processes if p.app == app))
        samples: dict[str, Bucket] = {}
        for app in {*counts, *(p.app for p in processes)}:
            delta = counter_delta(counts[app], self._counts.get(app)) if app in counts else AppFigures()
            minute = minutes.setdefault(app, _Minute(start))
            requests = sum(delta.by_class.values())
            if requests or delta.bytes_sent or minute.instances or minute.cpu or minute.memory:
                samples[app] = Bucket(start=start, requests=requests,
                                      by_class=tuple(delta.by_class.get(c, 0) for c in STATUS_CLASSES),
                                      latency=tuple(delta.buckets), bytes_sent=delta.bytes_sent,
                                      instances=minute.instances, usage=minute.usage())
        self._store.record_minutes(samples)
        self._counts = counts
        self._cpu = marks
        self._minutes = {app: minutes[app] for app in samples}

    def _cores(self, process: _Process, usage: Usage, now: float) -> tuple[float | None, _CpuMark | None]:
        """CPU in cores since the process's last mark, and its mark for the next sample."""
        if usage.cpu_seconds is None:
            return None, None
        mark = self._cpu.get((process.app, process.name))
        if mark is None or mark.key != process.key or now < mark.at:  # a new process, or the clock went back
            return None, _CpuMark(process.key, now, usage.cpu_seconds)
        if now - mark.at < MIN_CPU_SPAN:
            return None, mark
        # Never negative: a process tree can lose a child's CPU time when it is reparented out of the tree.
        return max(0.0, usage.cpu_seconds - mark.cpu_seconds) / (now - mark.at), \
            _CpuMark(process.key, now, usage.cpu_seconds)

    def roll_up(self, now: float) -> tuple[int, int]:
        """Finished hours into hour buckets, old buckets pruned: (hours made, buckets deleted)."""
        return self._store.roll_up_metrics(now)

    # The loop

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run(self) -> None:
        """Sample every interval, roll up a minute past every hour (and at once: hours missed while the platform
        was stopped). Never dies: a failed step (a full disk, a busy store) is reported once and retried."""
        next_rollup = 0.0
        while True:
            now = self._clock()
            try:
                await _in_thread(self._record, now, self._edge.snapshot(), self._processes())
                if now >= next_rollup:
                    await _in_thread(self.roll_up, now)
                    next_rollup = now - now % HOUR + HOUR + ROLLUP_DELAY
                self._recovered()
            except Exception as exc:  # noqa: BLE001 — whatever it was, the charts must keep going
                self._failed(exc)
            await asyncio.sleep(self._interval)

    def _failed(self, exc: Exception) -> None:
        message = f"The metrics history could not record a sample: {exc}"
        if message != self._failure:  # once, not every few seconds while it lasts
            self._report(f"{message} (retrying every {self._interval:g} s)")
        self._failure = message

    def _recovered(self) -> None:
        if self._failure is not None:
            self._report("The metrics history records samples again")
        self._failure = None

    # Reading

    def latest_usage(self, app: str) -> dict[str, tuple[float | None, float | None]]:
        """Each instance's latest CPU (cores) and memory (bytes), as last sampled: for `shipyard ps`."""
        minute = self._minutes.get(app)
        if minute is None:
            return {}
        names = set(minute.cpu) | set(minute.memory)
        return {n: (minute.cpu[n][-1] if minute.cpu.get(n) else None,
                    minute.memory[n][-1] if minute.memory.get(n) else None) for n in names}

    def app_series(self, app: str, window: str = "hour", now: float | None = None) -> AppSeries:
        """The app's chart series for "hour" (minute points), "day" (5-minute points) or "week" (hour points),
        ending with the point under way. One or two store queries."""
        if window not in WINDOWS:
            raise ValueError(f"unknown window {window!r}: one of {', '.join(WINDOWS)}")
        spec = WINDOWS[window]
        now = self._clock() if now is None else now
        first, end = spec.first(now), spec.last(now) + spec.step
        buckets = self._store.metric_buckets(app, spec.resolution, first, end)
        if spec.resolution == HOUR:
            # The hour under way, and one just finished that is not rolled up yet, from their minutes.
            rolled = {b.start for b in buckets}
            missing = [h for h in (spec.last(now) - HOUR, spec.last(now)) if h >= first and h not in rolled]
            if missing:
                buckets += [b for b in self._store.metric_buckets(app, MINUTE, missing[0], end)
                            if b.start - b.start % HOUR in missing]
        return build_series(app, spec, now, buckets)

    def requests_per_minute(self, apps: Sequence[str], now: float | None = None,
                            minutes: int = 60) -> dict[str, list[int]]:
        """Each app's requests in each of the last `minutes` minutes, oldest first, the one under way last (the
        app list's sparklines), in one query for all the apps."""
        now = self._clock() if now is None else now
        last = int(now) - int(now) % MINUTE
        first = last - (minutes - 1) * MINUTE
        found = self._store.minute_requests(list(apps), first, last + MINUTE)
        return {app: [found[app].get(first + i * MINUTE, 0) for i in range(minutes)] for app in apps}


async def _in_thread(function: Callable[..., T], *args: Any) -> T:
    """function(*args) in a thread; cancelled, it still waits for the thread (the store closes right after)."""
    work = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        raise
