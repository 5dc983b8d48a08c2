"""Each app's metrics history: a bucket per minute (kept two days) and per hour (rolled up from the minutes, kept
eight days), for the dashboard's charts.

Counters (requests by status class, the latency histogram, bytes sent) are added up, so an hour is the exact sum
of its minutes and percentiles are computed when read; gauges (web instances up, each instance's CPU and memory)
are the most seen (instances) or the averages (CPU, memory) over the bucket.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from shipyard.store.models import AppRow, MetricRow

MINUTE = 60
HOUR = 3600
MINUTES_KEPT = 25 * HOUR  # the day chart of minutes (and the hour being rolled up); older: hours only
HOURS_KEPT = 8 * 24 * HOUR  # a week's chart of hours, and the hour it began in
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

# An instance's (CPU in cores, memory in bytes), averaged over the bucket; None where it was not measured (the
# first sample of a new process has no CPU figure yet).
Usage = tuple[float | None, float | None]


@dataclass(frozen=True)
class Bucket:
    start: int  # unix seconds
    requests: int = 0  # of every status, "other" (the client went away before one) included
    by_class: tuple[int, ...] = (0, 0, 0, 0, 0)  # aligned with STATUS_CLASSES
    latency: tuple[int, ...] = ()  # histogram counts aligned with the edge's LATENCY_BUCKETS + Inf; short: zeros
    bytes_sent: int = 0
    instances: int = 0
    usage: Mapping[str, Usage] = field(default_factory=dict)

    def class_counts(self) -> dict[str, int]:
        return dict(zip(STATUS_CLASSES, self.by_class))


def add_counts(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """Element-wise sum of two histograms (or class counts) of any lengths, the shorter padded with zeros."""
    longer, shorter = (a, b) if len(a) >= len(b) else (b, a)
    return tuple(x + (shorter[i] if i < len(shorter) else 0) for i, x in enumerate(longer))


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def merge_buckets(start: int, buckets: Sequence[Bucket]) -> Bucket:
    """Buckets as one (minutes into an hour or a chart's point): counters summed, the most instances, each
    instance's CPU and memory averaged over the buckets that measured it."""
    by_class: tuple[int, ...] = (0,) * len(STATUS_CLASSES)
    latency: tuple[int, ...] = ()
    usage: dict[str, list[Usage]] = {}
    for bucket in buckets:
        by_class, latency = add_counts(by_class, bucket.by_class), add_counts(latency, bucket.latency)
        for name, figures in bucket.usage.items():
            usage.setdefault(name, []).append(figures)
    return Bucket(start=start, requests=sum(b.requests for b in buckets), by_class=by_class, latency=latency,
                  bytes_sent=sum(b.bytes_sent for b in buckets),
                  instances=max((b.instances for b in buckets), default=0),
                  usage={name: (_mean(u[0] for u in seen), _mean(u[1] for u in seen)) for name, seen in usage.items()})


class MetricStore:
    """Mixed into Store, whose session it uses."""

    def _session(self) -> AbstractContextManager[Session]:  # provided by Store
        raise NotImplementedError

    def record_minutes(self, samples: Mapping[str, Bucket]) -> None:
        """Add each app's counters to its minute bucket (the sample's start) and set that bucket's gauges: the
        sampler calls this several times a minute with what was counted since its last call. Additive, so a
        platform restarted within a minute adds to what it wrote before. Apps destroyed meanwhile are skipped."""
        if not samples:
            return
        with self._session() as s:
            ids = {name: app_id for name, app_id in
                   s.execute(select(AppRow.name, AppRow.id).where(AppRow.name.in_(list(samples))))}
            for app, sample in samples.items():
                if (app_id := ids.get(app)) is None:
                    continue
                row = s.get(MetricRow, (app_id, MINUTE, sample.start))
                if row is None:
                    s.add(_row(app_id, MINUTE, sample))
                    continue
                old = _bucket(row)
                total = Bucket(start=sample.start, requests=old.requests + sample.requests,
                               by_class=add_counts(old.by_class, sample.by_class),
                               latency=add_counts(old.latency, sample.latency),
                               bytes_sent=old.bytes_sent + sample.bytes_sent,
                               instances=sample.instances, usage=sample.usage)
                _fill(row, total)

    def metric_buckets(self, app: str, resolution: int, since: int, until: int) -> list[Bucket]:
        """The app's buckets of that resolution starting in [since, until), oldest first (none: no figures)."""
        with self._session() as s:  # columns, not ORM objects: a day of minutes reads three times faster
            rows = s.execute(select(*_COLUMNS).join(AppRow, AppRow.id == MetricRow.app_id)
                             .where(AppRow.name == app, MetricRow.resolution == resolution,
                                    MetricRow.start >= since, MetricRow.start < until)
                             .order_by(MetricRow.start))
            return [_bucket_of(values) for values in rows]

    def minute_requests(self, apps: Sequence[str], since: int, until: int) -> dict[str, dict[int, int]]:
        """App → minute start → requests, for minutes in [since, until), in one query for all the apps (the app
        list's sparklines); minutes without requests are left out."""
        found: dict[str, dict[int, int]] = {app: {} for app in apps}
        if not apps:
            return found
        with self._session() as s:
            rows = s.execute(select(AppRow.name, MetricRow.start, MetricRow.requests)
                             .join(AppRow, AppRow.id == MetricRow.app_id)
                             .where(AppRow.name.in_(list(apps)), MetricRow.resolution == MINUTE,
                                    MetricRow.start >= since, MetricRow.start < until, MetricRow.requests > 0))
            for name, start, requests in rows:
                found[name][start] = requests
        return found

    def roll_up_metrics(self, now: float, minutes_kept: int = MINUTES_KEPT,
                        hours_kept: int = HOURS_KEPT) -> tuple[int, int]:
        """Make the hour buckets of every finished hour that has minutes and no hour bucket yet (hours missed
        while the platform was stopped included), then delete minutes and hours past their keeping.
        Returns (hour buckets made, buckets deleted). A transaction per app: catching up on two days of a hundred
        apps takes seconds, which must not hold the store's write lock (deploys wait on it) all along."""
        current_hour = int(now) - int(now) % HOUR
        with self._session() as s:
            hour_of = MetricRow.start - MetricRow.start % HOUR
            finished = {(app_id, hour) for app_id, hour in s.execute(
                select(MetricRow.app_id, hour_of).distinct()
                .where(MetricRow.resolution == MINUTE, MetricRow.start < current_hour))}
            oldest = min((hour for _, hour in finished), default=current_hour)
            done = {(app_id, hour) for app_id, hour in s.execute(
                select(MetricRow.app_id, MetricRow.start)
                .where(MetricRow.resolution == HOUR, MetricRow.start >= oldest))}
        todo: dict[int, set[int]] = {}
        for app_id, hour in finished - done:
            todo.setdefault(app_id, set()).add(hour)
        made = 0
        for app_id, hours in todo.items():
            with self._session() as s:
                minutes: dict[int, list[Bucket]] = {}
                for values in s.execute(select(*_COLUMNS).where(
                        MetricRow.app_id == app_id, MetricRow.resolution == MINUTE,
                        MetricRow.start >= min(hours), MetricRow.start < current_hour)):
                    bucket = _bucket_of(values)
                    if (hour := bucket.start - bucket.start % HOUR) in hours:
                        minutes.setdefault(hour, []).append(bucket)
                if s.get(AppRow, app_id) is None:  # destroyed meanwhile
                    continue
                for hour, buckets in minutes.items():
                    s.add(_row(app_id, HOUR, merge_buckets(hour, buckets)))
                    made += 1
        with self._session() as s:
            pruned = 0
            for resolution, kept in ((MINUTE, minutes_kept), (HOUR, hours_kept)):
                pruned += s.execute(delete(MetricRow).where(MetricRow.resolution == resolution,
                                                            MetricRow.start < now - kept)).rowcount
            return made, pruned


def _row(app_id: int, resolution: int, bucket: Bucket) -> MetricRow:
    row = MetricRow(app_id=app_id, resolution=resolution, start=bucket.start)
    _fill(row, bucket)
    return row


def _fill(row: MetricRow, bucket: Bucket) -> None:
    row.requests, row.bytes_sent, row.instances = bucket.requests, bucket.bytes_sent, bucket.instances
    row.status_1xx, row.status_2xx, row.status_3xx, row.status_4xx, row.status_5xx = bucket.by_class
    latency = list(bucket.latency)
    while latency and latency[-1] == 0:  # a few bytes less on every row: most requests are fast
        latency.pop()
    row.latency = json.dumps(latency, separators=(",", ":"))
    row.usage = json.dumps({name: [None if cpu is None else round(cpu, 4), None if mem is None else int(mem)]
                            for name, (cpu, mem) in sorted(bucket.usage.items())}, separators=(",", ":"))


_COLUMNS = (MetricRow.start, MetricRow.requests, MetricRow.status_1xx, MetricRow.status_2xx, MetricRow.status_3xx,
            MetricRow.status_4xx, MetricRow.status_5xx, MetricRow.latency, MetricRow.bytes_sent, MetricRow.instances,
            MetricRow.usage)


def _bucket(row: MetricRow) -> Bucket:
    return _bucket_of([getattr(row, column.key) for column in _COLUMNS])


def _bucket_of(values: Sequence[Any]) -> Bucket:
    """A bucket from the values of _COLUMNS."""
    start, requests, *by_class, latency, bytes_sent, instances, usage = values
    return Bucket(start=start, requests=requests or 0, by_class=tuple(c or 0 for c in by_class),
                  latency=_counts(latency), bytes_sent=bytes_sent or 0, instances=instances or 0, usage=_usage(usage))


def _counts(text: str | None) -> tuple[int, ...]:
    """A damaged histogram reads as none (the chart shows no latency there) rather than failing the page."""
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, int) and v >= 0 for v in value):
        return ()
    return tuple(value)


def _usage(text: str | None) -> dict[str, Usage]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    found: dict[str, Usage] = {}
    for name, pair in value.items() if isinstance(value, dict) else ():
        if isinstance(pair, list) and len(pair) == 2 and all(v is None or isinstance(v, (int, float)) for v in pair):
            found[str(name)] = (pair[0], pair[1])
    return found
