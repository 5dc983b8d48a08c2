"""The metrics history behind the dashboard's charts: sampling the edge's counters and the instances' CPU and
memory into minute buckets, hour rollups, pruning, chart series and the app list's sparklines — with a real
store (SQLite in tmp_path) and the edge's real counters."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import event

from shipyard.control.metrics_history import MetricsHistory, counter_delta
from shipyard.control.metrics_series import WINDOWS, histogram_quantile
from shipyard.edge.metrics import LATENCY_BUCKETS, AppFigures, EdgeMetrics
from shipyard.edge.router_log import RouterEntry
from shipyard.runtime.cgroups import Cgroup
from shipyard.runtime.usage import Usage
from shipyard.settings import Settings
from shipyard.store.metrics import HOUR, MINUTE, Bucket
from shipyard.store.secrets import Cipher
from shipyard.store.store import Store

T0 = 1_800_000_000 - 1_800_000_000 % HOUR  # the start of an hour (a Friday in 2027), UTC


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "shipyard.db", Cipher(Fernet.generate_key()), tmp_path / "backups")
    for name in ("shop", "blog"):
        store.create_app(name)
    yield store
    store.close()


@dataclass
class FakeSpec:
    process_type: str
    index: int

    @property
    def name(self) -> str:
        return f"{self.process_type}.{self.index}"


@dataclass(eq=False)
class FakeInstance:
    spec: FakeSpec
    pid: int
    state: str = "up"
    cgroup: Cgroup | None = None

    @property
    def routable(self) -> bool:
        return self.state == "up" and self.spec.process_type == "web"


@dataclass
class FakeSupervisor:
    running: dict[str, list[FakeInstance]] = field(default_factory=dict)

    def apps(self) -> list[str]:
        return sorted(self.running)

    def instances(self, app: str) -> list[FakeInstance]:
        return list(self.running.get(app, []))


@dataclass
class FakeUsage:
    """Cumulative CPU seconds and memory per pid, as the cgroup or psutil would report them."""

    by_pid: dict[int, Usage] = field(default_factory=dict)

    def __call__(self, cgroup: Cgroup | None, pid: int | None) -> Usage:
        return self.by_pid.get(pid or 0, Usage(None, None))


def history(store: Store, edge: EdgeMetrics, supervisor: FakeSupervisor | None = None,
            usage: FakeUsage | None = None, **kwargs: Any) -> MetricsHistory:
    return MetricsHistory(store, edge, supervisor or FakeSupervisor(), 10.0,  # type: ignore[arg-type]
                          read_usage=usage or FakeUsage(), **kwargs)


def request(edge: EdgeMetrics, app: str = "shop", status: int = 200, ms: int = 12, sent: int = 100) -> None:
    edge.observe(RouterEntry(app, "rid", f"app-{app}", "s1", "GET", "/", status, ms, sent))


def minutes(store: Store, app: str = "shop") -> list[Bucket]:
    return store.metric_buckets(app, MINUTE, 0, 2**40)


def hist(**at_ms: int) -> tuple[int, ...]:
    """A histogram with counts in the buckets whose upper bounds (ms) are given: hist(_10=3, _250=1)."""
    bounds = [str(int(b * 1000)) for b in LATENCY_BUCKETS] + ["inf"]
    counts = [0] * len(bounds)
    for key, count in at_ms.items():
        counts[bounds.index(key.lstrip("_"))] = count
    return tuple(counts)


# Percentiles from a histogram

def test_a_percentile_is_interpolated_within_its_bucket_as_prometheus_does() -> None:
    bounds = (1.0, 2.0, 4.0)
    assert histogram_quantile(0.5, [1, 2, 1, 0], bounds) == 1.5  # rank 2: half-way through (1, 2]
    assert histogram_quantile(0.5, [10], bounds) == 0.5  # the first bucket starts at 0
    assert histogram_quantile(1.0, [1, 2, 1, 0], bounds) == 4.0
    assert histogram_quantile(0.99, [0, 0, 0, 5], bounds) == 4.0  # in +Inf: the highest bound is all we know
    assert histogram_quantile(0.5, [], bounds) is None and histogram_quantile(0.5, [0, 0], bounds) is None
    # The edge's own buckets: 100 requests, half ≤ 5 ms and half in (5, 10] ms.
    counts = hist(_5=50, _10=50)
    assert histogram_quantile(0.5, counts) == pytest.approx(0.005)
    assert histogram_quantile(0.95, counts) == pytest.approx(0.005 + 0.005 * 45 / 50)
    assert histogram_quantile(0.99, counts) == pytest.approx(0.0099)


def test_a_shorter_histogram_is_the_same_with_its_trailing_zeros_left_out() -> None:
    assert histogram_quantile(0.9, (0, 4)) == histogram_quantile(0.9, hist(_10=4))


# Sampling

def test_a_sample_adds_what_the_edge_counted_since_the_last_one_to_the_minute(store: Store) -> None:
    edge = EdgeMetrics()
    metrics = history(store, edge)
    for ms in (3, 8, 300):
        request(edge, ms=ms)
    request(edge, status=503, ms=8, sent=50)
    request(edge, "blog", status=404)
    metrics.sample(T0 + 5)
    request(edge, ms=20)
    metrics.sample(T0 + 15)  # the same minute: added to it
    request(edge, status=302)
    metrics.sample(T0 + 65)  # the next minute
    first, second = minutes(store)
    assert (first.start, first.requests, first.by_class, first.bytes_sent) == (T0, 5, (0, 4, 0, 0, 1), 450)
    assert first.latency == hist(_5=1, _10=2, _25=1, _500=1)[:7]  # trailing zeros are not stored
    assert (second.start, second.requests, second.by_class) == (T0 + 60, 1, (0, 0, 1, 0, 0))
    assert [(b.requests, b.by_class) for b in minutes(store, "blog")] == [(1, (0, 0, 0, 1, 0))]
    metrics.sample(T0 + 75)  # nothing new, no instances: nothing written
    assert len(minutes(store)) == 2


def test_counters_that_went_back_to_zero_count_from_zero_never_negative_or_huge(store: Store) -> None:
    edge = EdgeMetrics()
    metrics = history(store, edge)
    for _ in range(100):
        request(edge)
    metrics.sample(T0 + 5)
    edge.forget("shop")  # the app destroyed and made again, or the edge's counters otherwise restarted
    request(edge)
    request(edge, status=500)
    metrics.sample(T0 + 15)
    [bucket] = minutes(store)
    assert (bucket.requests, bucket.by_class) == (102, (0, 101, 0, 0, 1))
    # The platform restarts within the same minute: new counters, a new history; what it counts is added.
    edge = EdgeMetrics()
    metrics = history(store, edge)
    for _ in range(3):
        request(edge)
    metrics.sample(T0 + 25)
    [bucket] = minutes(store)
    assert bucket.requests == 105 and min(bucket.latency) >= 0


def test_counter_delta_is_the_difference_or_everything_after_a_reset() -> None:
    before = AppFigures({"2xx": 5}, [5, 0], 1.0, 500)
    assert counter_delta(AppFigures({"2xx": 7, "4xx": 1}, [7, 1], 1.5, 800), before) == \
        AppFigures({"2xx": 2, "4xx": 1}, [2, 1], 0.5, 300)
    reset = AppFigures({"2xx": 1}, [1, 0], 0.01, 100)
    assert counter_delta(reset, before) == reset


def test_a_sample_whose_write_failed_is_counted_by_the_next_one(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    edge = EdgeMetrics()
    metrics = history(store, edge)
    request(edge)
    real = store.record_minutes

    def fail(samples: Any) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "record_minutes", fail)
    with pytest.raises(sqlite3.OperationalError):
        metrics.sample(T0 + 5)
    monkeypatch.setattr(store, "record_minutes", real)
    request(edge)
    metrics.sample(T0 + 15)
    assert [b.requests for b in minutes(store)] == [2]


def test_cpu_and_memory_per_instance_and_the_web_instances_up(store: Store) -> None:
    web1, web2 = FakeInstance(FakeSpec("web", 1), 11), FakeInstance(FakeSpec("web", 2), 12)
    worker = FakeInstance(FakeSpec("worker", 1), 13)
    supervisor = FakeSupervisor({"shop": [web1, web2, worker]})
    usage = FakeUsage({11: Usage(10.0, 100), 12: Usage(1.0, 200), 13: Usage(None, 300)})
    metrics = history(store, EdgeMetrics(), supervisor, usage)
    metrics.sample(T0 + 5)  # a first look: memory, but no CPU yet (it needs two)
    [bucket] = minutes(store)
    assert bucket.instances == 2  # web ones up: the worker is not one
    assert bucket.usage == {"web.1": (None, 100), "web.2": (None, 200), "worker.1": (None, 300)}
    usage.by_pid |= {11: Usage(15.0, 300), 12: Usage(1.5, 200)}
    metrics.sample(T0 + 15)  # 5 s of CPU in 10 s: half a core
    [bucket] = minutes(store)
    assert bucket.usage == {"web.1": (0.5, 200), "web.2": (0.05, 200), "worker.1": (None, 300)}
    # web.1 restarts (a new process: its CPU counts from zero again), web.2 crashed; next minute.
    web2.state = "crashed"
    supervisor.running["shop"] = [FakeInstance(FakeSpec("web", 1), 21), web2]
    usage.by_pid |= {21: Usage(0.2, 50), 12: Usage(0.5, 10)}  # a tree that lost a child: never negative
    metrics.sample(T0 + 65)
    second = minutes(store)[1]
    assert second.instances == 1
    assert second.usage == {"web.1": (None, 50), "web.2": (0.0, 10)}


def test_cpu_over_a_moment_is_not_measured_and_a_clock_that_went_back_starts_again(store: Store) -> None:
    web = FakeInstance(FakeSpec("web", 1), 11)
    usage = FakeUsage({11: Usage(1.0, 100)})
    metrics = history(store, EdgeMetrics(), FakeSupervisor({"shop": [web]}), usage)
    metrics.sample(T0 + 10)
    usage.by_pid[11] = Usage(1.1, 100)
    metrics.sample(T0 + 10.1)  # 0.1 s later: 1 core, mostly noise — measured over a longer span next time
    usage.by_pid[11] = Usage(2.0, 100)
    metrics.sample(T0 + 12)
    assert minutes(store)[0].usage["web.1"] == (0.5, 100)
    metrics.sample(T0 + 5)  # the clock went back: no figure, a new baseline
    assert minutes(store)[0].usage["web.1"] == (0.5, 100)


def test_a_destroyed_app_is_skipped_and_its_metrics_are_deleted_with_it(store: Store, tmp_path: Path) -> None:
    edge = EdgeMetrics()
    metrics = history(store, edge)
    request(edge)
    request(edge, "blog")
    metrics.sample(T0 + 5)
    store.roll_up_metrics(T0 + HOUR + 60)
    store.delete_app("shop")
    request(edge)  # a request that was under way as it went
    request(edge, "blog")
    metrics.sample(T0 + 15)
    with closing(sqlite3.connect(tmp_path / "shipyard.db")) as db:
        rows = db.execute("SELECT apps.name, resolution, requests FROM metrics JOIN apps ON apps.id = app_id "
                          "ORDER BY resolution").fetchall()
        assert db.execute("SELECT count(*) FROM metrics").fetchone() == (len(rows),)
    assert rows == [("blog", MINUTE, 2), ("blog", HOUR, 1)]


# Rollup and pruning

def test_an_hour_is_the_exact_sum_of_its_minutes(store: Store) -> None:
    for minute in range(60):
        store.record_minutes({"shop": Bucket(
            start=T0 + minute * MINUTE, requests=minute + 1, by_class=(0, minute, 0, 0, 1),
            latency=hist(_5=minute, _250=1) if minute % 2 else hist(_inf=1), bytes_sent=10,
            instances=1 + minute % 3, usage={"web.1": (0.1 * (minute % 2), 1000.0)} if minute < 30 else {})})
    store.record_minutes({"shop": Bucket(start=T0 + HOUR, requests=7)})  # the next hour, under way
    assert store.roll_up_metrics(T0 + HOUR + 60) == (1, 0)
    [hour] = store.metric_buckets("shop", HOUR, 0, 2**40)
    assert hour.start == T0
    assert hour.requests == sum(range(1, 61)) and hour.by_class == (0, sum(range(60)), 0, 0, 60)
    expected = [0] * len(hist())
    for bucket in minutes(store)[:60]:
        expected = [a + b for a, b in zip(expected, bucket.latency + (0,) * (len(expected) - len(bucket.latency)))]
    assert hour.latency == tuple(expected)
    assert histogram_quantile(0.99, hour.latency) == histogram_quantile(0.99, expected)
    assert (hour.bytes_sent, hour.instances) == (600, 3)
    assert hour.usage == {"web.1": (pytest.approx(0.05), 1000.0)}  # averaged over the minutes it ran
    assert store.roll_up_metrics(T0 + HOUR + 120) == (0, 0)  # done once


def test_hours_missed_while_stopped_are_rolled_up_before_old_buckets_are_pruned(store: Store) -> None:
    old = T0 - 3 * 24 * HOUR  # three days ago: its minutes are past keeping, its hour is not
    store.record_minutes({"shop": Bucket(start=old, requests=4), "blog": Bucket(start=old + 60, requests=1)})
    store.record_minutes({"shop": Bucket(start=T0 - 10 * 24 * HOUR, requests=9)})  # ten days ago: all of it goes
    store.record_minutes({"shop": Bucket(start=T0 - HOUR, requests=2)})
    made, pruned = store.roll_up_metrics(T0 + 60)
    assert made == 4 and pruned == 4  # 3 minutes past two days (one of them 10 days old) and that 10-day hour
    assert [(b.start, b.requests) for b in store.metric_buckets("shop", HOUR, 0, 2**40)] == [(old, 4), (T0 - HOUR, 2)]
    assert [(b.start, b.requests) for b in minutes(store)] == [(T0 - HOUR, 2)]
    assert [b.requests for b in store.metric_buckets("blog", HOUR, 0, 2**40)] == [1]


# Chart series

def test_the_hour_series_has_a_point_a_minute_with_zeros_and_gaps_where_nothing_was_measured(store: Store) -> None:
    now = T0 + 59 * MINUTE + 30  # half a minute into the last point
    store.record_minutes({"shop": Bucket(start=T0 + 10 * MINUTE, requests=120, by_class=(0, 90, 0, 0, 30),
                                         latency=hist(_10=120), instances=2, usage={"web.1": (0.25, 5e7)})})
    store.record_minutes({"shop": Bucket(start=T0 + 59 * MINUTE, requests=30, by_class=(0, 30, 0, 0, 0),
                                         latency=hist(_inf=30), instances=1, usage={"web.2": (None, 4e7)})})
    series = history(store, EdgeMetrics()).app_series("shop", "hour", now)
    assert series.times == [T0 + i * MINUTE for i in range(60)] and series.step == MINUTE
    assert series.requests_per_second[10] == 2.0 and series.requests_per_second[11] == 0.0
    assert series.requests_per_second[59] == 1.0  # 30 requests in the 30 s the minute has had
    assert series.by_class["5xx"][10] == 0.5 and series.by_class["2xx"][10] == 1.5
    assert series.p50[10] == pytest.approx(7.5) and series.p99[59] == 30000.0
    assert series.p50[11] is None and series.instances[11] == 0 and series.instances[10] == 2
    assert series.cpu == {"web.1": [0.25 if i == 10 else None for i in range(60)],
                          "web.2": [None] * 60}
    assert series.memory["web.2"][59] == 4e7 and series.memory["web.1"][59] is None
    assert (series.total_requests, series.total_by_class) == (150, {"1xx": 0, "2xx": 120, "3xx": 0, "4xx": 0,
                                                                     "5xx": 30})
    with pytest.raises(ValueError):
        history(store, EdgeMetrics()).app_series("shop", "year", now)


def test_the_day_series_has_five_minute_points(store: Store) -> None:
    now = T0 + 12 * HOUR
    for offset in (0, 60, 240, 300):  # the first three minutes in one point, the fourth in the next
        store.record_minutes({"shop": Bucket(start=now - 30 * MINUTE + offset, requests=60, latency=hist(_5=60),
                                             usage={"web.1": (offset / 600, None)})})
    series = history(store, EdgeMetrics()).app_series("shop", "day", now)
    assert len(series.times) == WINDOWS["day"].points == 288 <= 300 and series.step == 300
    assert series.times[-1] == now and series.times[0] == now - 287 * 300
    index = series.times.index(now - 30 * MINUTE)
    assert series.requests_per_second[index] == pytest.approx(180 / 300)
    assert series.requests_per_second[index + 1] == pytest.approx(60 / 300)
    assert series.cpu["web.1"][index] == pytest.approx((0 + 0.1 + 0.4) / 3)
    assert series.total_requests == 240


def test_the_week_series_has_hour_points_with_the_recent_hours_from_their_minutes(store: Store) -> None:
    now = T0 + 5 * MINUTE
    store.record_minutes({"shop": Bucket(start=T0 - 50 * HOUR, requests=100)})
    store.record_minutes({"shop": Bucket(start=T0 - 30 * MINUTE, requests=10)})  # an hour not rolled up yet
    store.roll_up_metrics(T0 - 10 * HOUR)  # rolls up the 50-hour-old one only
    store.record_minutes({"shop": Bucket(start=T0 + MINUTE, requests=3), "blog": Bucket(start=T0, requests=1)})
    series = history(store, EdgeMetrics()).app_series("shop", "week", now)
    assert len(series.times) == 168 and series.times[-1] == T0 and series.step == HOUR
    assert series.total_requests == 113
    assert series.requests_per_second[-1] == pytest.approx(3 / 300)  # the hour under way: 5 minutes so far
    assert series.requests_per_second[-2] == pytest.approx(10 / 3600)
    store.roll_up_metrics(T0 + 2 * MINUTE)  # now rolled up: counted once, not twice
    assert history(store, EdgeMetrics()).app_series("shop", "week", now).total_requests == 113


# The app list's sparklines

def test_requests_per_minute_for_many_apps_in_one_query(store: Store) -> None:
    now = T0 + 59 * MINUTE + 1
    store.record_minutes({"shop": Bucket(start=T0, requests=5), "blog": Bucket(start=T0 + 59 * MINUTE, requests=2)})
    store.record_minutes({"shop": Bucket(start=T0 - MINUTE, requests=99)})  # before the hour shown
    store.record_minutes({"shop": Bucket(start=T0 + 30 * MINUTE, requests=0, instances=1)})
    statements: list[str] = []
    event.listen(store._engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    found = history(store, EdgeMetrics()).requests_per_minute(["shop", "blog", "gone"], now)
    assert len(statements) == 1
    assert found["shop"] == [5] + [0] * 59 and found["blog"] == [0] * 59 + [2] and found["gone"] == [0] * 60
    assert history(store, EdgeMetrics()).requests_per_minute(["shop"], now, minutes=3) == {"shop": [0, 0, 0]}


def test_the_app_list_of_a_hundred_apps_with_a_day_of_minutes_reads_fast(tmp_path: Path) -> None:
    store = Store(tmp_path / "shipyard.db", Cipher(Fernet.generate_key()), tmp_path / "backups")
    names = [f"app{i:03}" for i in range(100)]
    for name in names:
        store.create_app(name)
    now = T0 + 24 * HOUR
    with closing(sqlite3.connect(tmp_path / "shipyard.db")) as db:  # a day of minutes, written fast
        db.executemany("INSERT INTO metrics VALUES (?, 60, ?, 7, 0, 6, 0, 0, 1, '[3,4]', 700, 1, "
                       "'{\"web.1\":[0.012,52428800]}')",
                       [(app_id, T0 + m * MINUTE) for app_id in range(1, 101) for m in range(24 * 60)])
        db.commit()
    metrics = history(store, EdgeMetrics())
    began = time.perf_counter()
    found = metrics.requests_per_minute(names, now)
    took = time.perf_counter() - began
    assert found["app042"] == [7] * 59 + [0]
    assert took < 0.1, f"{took:.3f} s for the app list's sparklines"
    began = time.perf_counter()
    assert metrics.app_series("app042", "day", now).total_requests == 7 * (24 * 60 - 5)  # 287 points and 1 under way
    assert time.perf_counter() - began < 0.2
    store.close()


# The loop

def test_the_loop_reports_a_failure_once_keeps_going_and_stops_cleanly(store: Store,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    edge = EdgeMetrics()
    reported: list[str] = []
    metrics = MetricsHistory(store, edge, FakeSupervisor(), 0.01, read_usage=FakeUsage(),  # type: ignore[arg-type]
                             report=reported.append)
    real, calls = store.record_minutes, []

    def flaky(samples: Any) -> None:
        calls.append(samples)
        if len(calls) <= 3:
            raise sqlite3.OperationalError("disk I/O error")
        real(samples)

    monkeypatch.setattr(store, "record_minutes", flaky)
    request(edge)

    async def run() -> None:
        metrics.start()
        for _ in range(500):
            await asyncio.sleep(0.01)
            if len(calls) > 4:
                break
        await metrics.stop()

    asyncio.run(run())
    assert reported[0].startswith("The metrics history could not record a sample: disk I/O error")
    assert reported[1:] == ["The metrics history records samples again"]
    assert sum(b.requests for b in minutes(store)) == 1


def test_the_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().metrics_interval == 10
    monkeypatch.setenv("SHIPYARD_METRICS_INTERVAL", "1")
    assert Settings().metrics_interval == 1.0
