"""The edge converges to the store and the running instances: routes (hostnames, custom domains, HTTPS flags,
instances) whenever something changed, certificates when apps or domains change and hourly for renewals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from shipyard.control.certificates import CHECK_INTERVAL, Certificates
from shipyard.edge.haproxy import Edge
from shipyard.edge.routes import AppRoute
from shipyard.errors import ShipyardError
from shipyard.runtime.supervisor import Supervisor
from shipyard.settings import Settings
from shipyard.store import records
from shipyard.store.store import Store

# Changes coalesce for this long before the edge follows, and whatever caused them (a woken instance's
# first request, which the activator hands over itself) goes first.
ROUTES_DEBOUNCE = 0.01
SHARED_SYNC_WAIT = 5.0  # how long a caller of `synced` waits for the routes loop (it retries a failed sync)


def https_flags(app: records.App, hostnames: Iterable[str], certified: set[str],
                trusted: set[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(hostnames redirected to HTTPS, hostnames sent HSTS): only those with a certificate. By default a
    hostname redirects once its certificate is publicly trusted (ACME); the app's setting overrides that."""
    with_certificate = [h for h in hostnames if h in certified]
    if app.redirect_https is None:
        redirect = frozenset(h for h in with_certificate if h in trusted)
    else:
        redirect = frozenset(with_certificate) if app.redirect_https else frozenset()
    return redirect, frozenset(with_certificate) if app.hsts else frozenset()


def may_rest(app: records.App) -> bool:
    """Autoscaled with --min 0: with no instance to take a request, the activator holds it and wakes the app."""
    bounds = app.autoscale.get("web")
    return bounds is not None and bounds.min == 0 and app.current_release is not None and not app.damage


def at_zero(app: records.App) -> bool:
    """Scaled to zero by the autoscaler (--min 0, no web instance): its requests wake it."""
    return may_rest(app) and app.formation.get("web", 1) == 0


class EdgeSync:
    def __init__(self, settings: Settings, store: Store, edge: Edge, supervisor: Supervisor,
                 certificates: Certificates) -> None:
        self._settings = settings
        self._store = store
        self._edge = edge
        self._supervisor = supervisor
        self.certificates = certificates
        self._dirty = asyncio.Event()
        self._certificates_dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Route syncs the loop began and finished: `synced` waits for one that began after it was called.
        self._began = self._finished = 0
        self._progress = asyncio.Condition()
        self.activator = ""  # where requests for an app at zero go (the platform's activator), once it listens

    def changed(self) -> None:
        """Routes (instances) changed: the edge follows at once, in the background."""
        self._dirty.set()

    def names_changed(self) -> None:
        """Apps or domains came or went: certificates first, then routes."""
        self._certificates_dirty.set()
        self._dirty.set()

    def route_inputs(self) -> list[AppRoute]:
        domains: dict[str, list[str]] = {}
        for domain in self._store.list_domains():
            domains.setdefault(domain.app, []).append(domain.hostname)
        certified = self._edge.certificates.hostnames()
        trusted = {h for h in certified if self.certificates.publicly_trusted(h)}
        routes = []
        for app in self._store.list_apps():
            hostname = self._settings.app_hostname(app.name)
            redirect, hsts = https_flags(app, [hostname, *domains.get(app.name, [])], certified, trusted)
            upstreams = self._supervisor.routable_addresses(app.name)
            if not upstreams and self.activator and may_rest(app):
                # At zero, frozen, or waking (its formation says 1 while the instance boots): held, not a 503.
                upstreams = (self.activator,)
            routes.append(AppRoute(app=app.name, hostname=hostname, upstreams=upstreams,
                                   domains=tuple(domains.get(app.name, [])), redirect_https=redirect, hsts=hsts))
        return routes

    async def sync(self) -> None:
        self._dirty.clear()
        await self._edge.apply(self.route_inputs())

    async def synced(self) -> None:
        """Until the edge has the routes as they are now, by the routes loop: callers at the same time share one
        sync (200 apps going to zero together sync a few times, not 200 times, each reading every app). Waits
        at most SHARED_SYNC_WAIT (the loop retries a failed sync on its own); without the loop, syncs itself."""
        if not self._tasks:
            await self.sync()
            return
        wanted = self._began + 1
        self._dirty.set()
        async with self._progress:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait_for(lambda: self._finished >= wanted), SHARED_SYNC_WAIT)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._routes_loop()), asyncio.create_task(self._certificates_loop())]

    async def stop(self) -> None:
        """Cancel the loops; raise what one of them had failed with, if it had."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        failed = [t.exception() for t in self._tasks if not t.cancelled() and t.exception() is not None]
        self._tasks = []
        if failed:
            raise failed[0]  # type: ignore[misc]

    async def _routes_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(ROUTES_DEBOUNCE)
            self._began += 1
            try:
                await self.sync()
            except (ShipyardError, OSError):  # the edge restarting, a full disk for its files: retry
                await asyncio.sleep(1)
                self._dirty.set()
                continue
            async with self._progress:
                self._finished = self._began
                self._progress.notify_all()

    async def _certificates_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._certificates_dirty.wait(), timeout=CHECK_INTERVAL)
            self._certificates_dirty.clear()
            try:
                await self.certificates.converge()
            except (ShipyardError, OSError):
                await asyncio.sleep(5)
                self._certificates_dirty.set()
            self._dirty.set()  # redirects and HSTS follow the certificates
