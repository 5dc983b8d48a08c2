"""Dashboard pages: how fast `shipyard up` serves them with 100 apps and a day of metrics (issue 14: < 200 ms).

Starts a real `shipyard up` in a temporary data directory, creates `--apps` apps through the API, deploys one of
them with git (tests/apps/flask-hello: real deploys, releases, an instance, router log lines), gives a few apps
config vars, then stops the platform and writes a day of minute buckets for every app straight into its store
(store/metrics.py's rows, as the sampler writes them; one bulk insert instead of 1440 `record_minutes` calls).
Traffic per app: a base rate of a few to hundreds of requests a minute with a daily swing and noise, mostly 2xx
with some 3xx/4xx/5xx (and an error burst now and then), a latency histogram in the edge's buckets, 1–2 web
instances with CPU and memory. The platform is started again (it rolls the finished hours up at start: the
script waits for those hour buckets), a browser-like client signs in (form POST, session cookie), and each page
is fetched 2 times to warm up and then `--fetches` times, the pages taken in turn (one round = every page once),
for the deployed app and for one app that has metrics only. Every response must be 200 and the page asked for
(not the sign-in page). Times are the client's, on loopback: request sent to body read.

Usage: python bench/dashboard.py [--apps 100] [--fetches 20] [--markdown]
Needs what `shipyard up` needs (run as root, like the e2e tests).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from shipyard.edge.metrics import LATENCY_BUCKETS  # noqa: E402
from shipyard.store.metrics import HOUR, MINUTE, Bucket, _row  # noqa: E402
from shipyard.store.models import AppRow, MetricRow  # noqa: E402
from shipyard.store.secrets import Cipher, load_or_create_key  # noqa: E402
from shipyard.store.store import Store  # noqa: E402
from tests.e2e.harness import Shipyard  # noqa: E402

GOAL_MS = 200.0
DAY = 24 * HOUR
SIGN_IN_FORM = 'action="/dashboard/sign-in"'
# Where a request's latency falls (seconds, the edge's histogram bounds and +Inf): a typical web app, most
# requests between 5 and 50 ms, a slow tail.
LATENCY_SHAPE = (0.10, 0.22, 0.30, 0.20, 0.10, 0.05, 0.02, 0.006, 0.003, 0.001, 0.0, 0.0, 0.0)
assert len(LATENCY_SHAPE) == len(LATENCY_BUCKETS) + 1


# ------------------------------------------------------------------------------------------------- traffic

@dataclass
class Profile:
    """One app's traffic: requests a minute around `base`, swinging over the day."""

    base: float  # mean requests per minute
    phase: float  # where in the day its peak is (radians)
    error_rate: float  # 5xx share on an ordinary minute
    instances: int
    memory: float  # bytes per instance, around which it wanders
    slow: float  # latency shift: 0 = as LATENCY_SHAPE, 1 = one bucket slower
    bursts: set[int] = field(default_factory=set)  # minutes (index) with an error burst


def profiles(apps: list[str], minutes: int, rng: random.Random) -> dict[str, Profile]:
    found = {}
    for app in apps:
        # Log-uniform between 3 and 400 requests a minute: most apps quiet, a few busy.
        base = math.exp(rng.uniform(math.log(3), math.log(400)))
        bursts: set[int] = set()
        for _ in range(rng.randint(0, 3)):
            first = rng.randrange(minutes)
            bursts |= set(range(first, min(minutes, first + rng.randint(2, 15))))
        found[app] = Profile(base=base, phase=rng.uniform(0, 2 * math.pi), error_rate=rng.uniform(0.0, 0.01),
                             instances=2 if base > 150 or rng.random() < 0.2 else 1,
                             memory=rng.uniform(60, 220) * 2**20, slow=rng.uniform(0, 1), bursts=bursts)
    return found


def split(total: int, shares: tuple[float, ...], rng: random.Random) -> list[int]:
    """`total` counts spread over `shares`, each part rounded up or down at random in proportion (so a quiet
    app's rare classes still show up now and then); the largest share takes what rounding left over."""
    weight = sum(shares)
    parts = []
    for share in shares:
        exact = total * share / weight
        parts.append(int(exact) + (rng.random() < exact - int(exact)))
    largest = max(range(len(shares)), key=lambda i: shares[i])
    parts[largest] += total - sum(parts)
    while parts[largest] < 0:  # rounded up too often: take it back from the others
        donor = max(range(len(parts)), key=lambda i: parts[i])
        parts[donor] -= 1
        parts[largest] += 1
    return parts


def minute_bucket(profile: Profile, index: int, start: int, rng: random.Random) -> Bucket:
    day_angle = 2 * math.pi * (start % DAY) / DAY
    rate = profile.base * (1 + 0.6 * math.sin(day_angle + profile.phase)) * rng.uniform(0.7, 1.3)
    requests = max(0, round(rate))
    burst = index in profile.bursts
    five = profile.error_rate + (rng.uniform(0.1, 0.4) if burst else 0)
    by_class = split(requests, (0.0, max(0.0, 0.955 - five), 0.02, 0.025, five), rng)
    # The latency histogram, one bucket slower for part of it when the app is slow (and in a burst).
    shift = profile.slow + (1.0 if burst else 0.0)
    shape = [LATENCY_SHAPE[i] * (1 - shift % 1) + (LATENCY_SHAPE[i - 1] if i else 0) * (shift % 1)
             for i in range(len(LATENCY_SHAPE))]
    if shift >= 1:
        shape = [0.0, *shape[:-1]]
    latency = split(requests, tuple(s + 1e-9 for s in shape), rng)
    cpu_per_request = 0.00015 * (1 + profile.slow)  # cores per request/minute: ~0.05 cores at 300 a minute
    usage = {}
    for n in range(1, profile.instances + 1):
        cpu = 0.003 + requests * cpu_per_request / profile.instances * rng.uniform(0.8, 1.2)
        memory = profile.memory * (1 + 0.1 * math.sin(index / 97 + n)) * rng.uniform(0.98, 1.02)
        usage[f"web.{n}"] = (cpu, memory)
    return Bucket(start=start, requests=requests, by_class=tuple(by_class), latency=tuple(latency),
                  bytes_sent=requests * rng.randint(1500, 9000), instances=profile.instances, usage=usage)


def write_day_of_metrics(data_dir: Path, apps: list[str], now: float, seed: int) -> tuple[int, float]:
    """A minute bucket for every app and every minute of the last 24 h, into the stopped platform's store
    (opened as `shipyard up` opens it). Minutes the platform already wrote (the deployed app's last minutes) get
    the generated figures added through `record_minutes`, as the sampler adds to them; the rest go in as one bulk
    insert. Returns (rows written, seconds)."""
    rng = random.Random(seed)
    last = int(now) - int(now) % MINUTE
    starts = [last - (DAY // MINUTE - 1 - i) * MINUTE for i in range(DAY // MINUTE)]
    traffic = profiles(apps, len(starts), rng)
    started = time.perf_counter()
    store = Store(data_dir / "shipyard.db", Cipher(load_or_create_key(data_dir / "secret.key")),
                  data_dir / "backups" / "store")
    try:
        with store._session() as s:  # a bench filling the store directly
            ids = dict(s.execute(select(AppRow.name, AppRow.id).where(AppRow.name.in_(apps))).all())
            existing = {(app_id, start) for app_id, start in s.execute(
                select(MetricRow.app_id, MetricRow.start).where(MetricRow.resolution == MINUTE))}
        columns = [c.key for c in MetricRow.__table__.columns]
        merge: dict[int, dict[str, Bucket]] = {}
        rows: list[dict[str, object]] = []
        for app in apps:
            profile = traffic[app]
            for index, start in enumerate(starts):
                bucket = minute_bucket(profile, index, start, rng)
                if (ids[app], start) in existing:
                    merge.setdefault(start, {})[app] = bucket
                    continue
                row = _row(ids[app], MINUTE, bucket)  # the sampler's own encoding of a bucket
                rows.append({c: getattr(row, c) for c in columns})
        with store._session() as s:
            for chunk in range(0, len(rows), 20_000):
                s.execute(insert(MetricRow), rows[chunk:chunk + 20_000])
        for start in sorted(merge):
            store.record_minutes(merge[start])
    finally:
        store.close()
    return len(rows) + sum(len(m) for m in merge.values()), time.perf_counter() - started


def metric_rows(db: Path) -> dict[int, int]:
    """Resolution → rows, read with a plain sqlite3 connection (WAL: alongside the running platform)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return dict(conn.execute("SELECT resolution, count(*) FROM metrics GROUP BY resolution").fetchall())


def hours_to_roll_up(db: Path, now: float) -> int:
    current_hour = int(now) - int(now) % HOUR
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return conn.execute("SELECT count(*) FROM (SELECT DISTINCT app_id, start - start % 3600 FROM metrics "
                            "WHERE resolution = 60 AND start < ?)", (current_hour,)).fetchone()[0]


def wait_for_roll_up(db: Path, timeout: float = 300) -> float:
    """Seconds until the restarted platform has made the hour buckets of every finished hour."""
    started = time.monotonic()
    while True:
        expected = hours_to_roll_up(db, time.time())
        if metric_rows(db).get(HOUR, 0) >= expected:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the platform made {metric_rows(db).get(HOUR, 0)} of {expected} hour buckets "
                               f"in {timeout:.0f} s")
        time.sleep(0.5)


# ------------------------------------------------------------------------------------------------- platform

def prepare(shipyard: Shipyard, apps: list[str], deployed: str, with_config: list[str]) -> None:
    for app in apps:
        shipyard.api("POST", "/apps", json={"name": app}).raise_for_status()
    for n, app in enumerate(with_config):
        if app == deployed:
            continue
        variables = {f"VAR_{k}": f"value-{n}-{k}" for k in range(6)}
        shipyard.api("PATCH", f"/apps/{app}/config", json={"set": variables}).raise_for_status()
    shipyard.cli("git-auth")
    work = shipyard.checkout("flask-hello", deployed)
    shipyard.push(work)  # v1
    shipyard.api("PATCH", f"/apps/{deployed}/config",
                 json={"set": {"GREETING": "hi", "FEATURE_FLAGS": "a,b", "SECRET_KEY": "s3cr3t"}}).raise_for_status()
    source = (work / "app.py").read_text()
    (work / "app.py").write_text(source.replace('VERSION = "1"', 'VERSION = "2"'))
    shipyard.commit(work, "Say v2")
    shipyard.push(work)
    for n in range(200):  # router lines in its log, requests in its real minute buckets
        status = shipyard.get(deployed, "/" if n % 10 else "/missing").status_code
        assert status in (200, 404), status


# ------------------------------------------------------------------------------------------------- fetching

@dataclass
class Page:
    label: str
    path: str
    must_contain: tuple[str, ...]
    times: list[float] = field(default_factory=list)  # ms
    size: int = 0

    def quantile(self, q: float) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def pages_for(apps: list[str], deployed: str, quiet: str) -> list[Page]:
    pages = [Page("/dashboard (app list)", "/dashboard", tuple(f"/dashboard/apps/{a}" for a in apps))]
    for app, kind in ((deployed, "deployed"), (quiet, "metrics only")):
        base = f"/dashboard/apps/{app}"
        for suffix, name in (("", "overview"), ("/deploys", "deploys"), ("/logs", "logs"),
                             ("/metrics?window=hour", "metrics, hour"), ("/metrics?window=day", "metrics, day"),
                             ("/metrics?window=week", "metrics, week"), ("/settings", "settings")):
            must = [app]
            if "metrics" in suffix:
                must.append("<svg")
            pages.append(Page(f"{name} ({kind})", base + suffix, tuple(must)))
    return pages


def sign_in(client: httpx.Client, shipyard: Shipyard) -> None:
    response = client.post("/dashboard/sign-in", data={"token": shipyard.token, "next": "/dashboard"},
                           headers={"Origin": f"http://127.0.0.1:{shipyard.api_port}"})
    if response.status_code != 303 or "shipyard_session" not in client.cookies:
        raise RuntimeError(f"sign-in failed: {response.status_code} {response.text[:300]!r}")


def fetch(client: httpx.Client, page: Page) -> float:
    started = time.perf_counter()
    response = client.get(page.path)
    body = response.content
    elapsed = (time.perf_counter() - started) * 1000
    text = body.decode("utf-8", "replace")
    if response.status_code != 200:
        raise RuntimeError(f"{page.path} answered {response.status_code}: {text[:2000]}")
    if SIGN_IN_FORM in text:
        raise RuntimeError(f"{page.path} answered with the sign-in page")
    missing = [m for m in page.must_contain if m not in text]
    if missing:
        raise RuntimeError(f"{page.path} lacks {missing[:5]} ({len(missing)} missing)")
    page.size = len(body)
    return elapsed


def measure(client: httpx.Client, pages: list[Page], fetches: int, warmups: int = 2) -> None:
    for page in pages:
        for _ in range(warmups):
            fetch(client, page)
    for _ in range(fetches):
        for page in pages:
            page.times.append(fetch(client, page))


# ------------------------------------------------------------------------------------------------- report

def size_text(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def print_table(pages: list[Page], markdown: bool) -> None:
    def goal(page: Page) -> str:
        return "yes" if page.quantile(0.95) < GOAL_MS else "no"

    if markdown:
        print("\n| page | p50 ms | p95 ms | max ms | size | goal met (p95 < 200 ms) |")
        print("|---|---|---|---|---|---|")
        for p in pages:
            print(f"| {p.label} | {statistics.median(p.times):.1f} | {p.quantile(0.95):.1f} | {max(p.times):.1f} | "
                  f"{size_text(p.size)} | {goal(p)} |")
        return
    print(f"\n  {'page':<32} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'size':>10}  goal met (p95 < 200 ms)")
    for p in pages:
        print(f"  {p.label:<32} {statistics.median(p.times):7.1f} {p.quantile(0.95):7.1f} {max(p.times):7.1f} "
              f"{size_text(p.size):>10}  {goal(p)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--fetches", type=int, default=20, help="timed fetches of every page (after 2 warm-ups)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--seed", type=int, default=14, help="of the generated traffic")
    args = parser.parse_args()
    if args.apps < 2:
        parser.error("--apps must be at least 2 (one deployed, one with metrics only)")

    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min); {os.cpu_count()} cores")
    apps = [f"app{n:03d}" for n in range(args.apps)]
    deployed, quiet = apps[0], apps[len(apps) // 2]
    with_config = apps[::10]
    with tempfile.TemporaryDirectory(prefix="shipyard-dashboard-bench-") as tmp:
        shipyard = Shipyard(Path(tmp))
        db = shipyard.data_dir / "shipyard.db"
        try:
            started = time.perf_counter()
            shipyard.start()
            prepare(shipyard, apps, deployed, with_config)
            print(f"{len(apps)} apps created, {deployed} deployed twice with git (flask-hello) and a config change, "
                  f"{len(with_config)} with config vars, 200 requests to {deployed} through the edge "
                  f"({time.perf_counter() - started:.1f} s)")
            shipyard.stop()
            now = time.time()
            written, seconds = write_day_of_metrics(shipyard.data_dir, apps, now, args.seed)
            print(f"a day of minute buckets written for {len(apps)} apps: {written} rows in {seconds:.1f} s")
            started = time.perf_counter()
            shipyard.start(timeout=120)
            print(f"platform started again in {time.perf_counter() - started:.1f} s; hour buckets rolled up "
                  f"{wait_for_roll_up(db):.1f} s after that")
            rows = metric_rows(db)
            with httpx.Client(base_url=f"http://127.0.0.1:{shipyard.api_port}", timeout=60) as client:
                sign_in(client, shipyard)
                pages = pages_for(apps, deployed, quiet)
                measure(client, pages, args.fetches)
            store_size = sum(p.stat().st_size for p in db.parent.glob("shipyard.db*") if p.is_file())
            wal = db.with_name("shipyard.db-wal")
            wal_size = wal.stat().st_size if wal.exists() else 0
        finally:
            shipyard.kill_all()
    print(f"store: {size_text(store_size)} (shipyard.db {size_text(store_size - wal_size)}, WAL "
          f"{size_text(wal_size)}); metric rows: {rows.get(MINUTE, 0)} minutes, {rows.get(HOUR, 0)} hours")
    print(f"pages: {args.fetches} timed fetches each after 2 warm-ups, in rounds (every page once per round); "
          f"client's time on loopback; apps: {deployed} (deployed), {quiet} (metrics only)")
    print_table(pages, args.markdown)
    met = sum(p.quantile(0.95) < GOAL_MS for p in pages)
    print(f"\n{met} of {len(pages)} pages meet the goal (p95 < {GOAL_MS:.0f} ms)")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
