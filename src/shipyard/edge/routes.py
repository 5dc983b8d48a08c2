"""The edge's routing state as values, and the runtime-API commands that move HAProxy from one state to the next.

HAProxy never reloads: a reload would start new processes, and connections of other apps (WebSockets,
requests on idle keep-alive connections) would depend on the old ones' grace. Instead the config declares a
pool of empty backends once; an app is given one of them by an entry in the hosts map (hostname →
"backend:app"), and its instances are servers added to and removed from that backend over the runtime API.
So creating an app, destroying one and every deploy are a few map and server commands.

Nothing here talks to HAProxy; `shipyard.edge.haproxy` does. Everything here is a pure function of values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from shipyard.errors import PlatformError


@dataclass(frozen=True)
class AppRoute:
    app: str  # app name, a DNS label
    hostname: str  # e.g. "todo.localhost"
    upstreams: tuple[str, ...]  # dial addresses "127.0.0.1:PORT"; empty = no healthy instance
    domains: tuple[str, ...] = ()  # the app's custom domains, served like its hostname
    # Per hostname: answer plain HTTP with a redirect to HTTPS (only once it has a certificate), and send HSTS.
    redirect_https: frozenset[str] = frozenset()
    hsts: frozenset[str] = frozenset()

    def entries(self, backend: str) -> dict[str, str]:
        """The hosts-map entries of this app: hostname → "backend:app:flags" (r: redirect, h: HSTS)."""
        return {host: map_value(backend, self.app, ("r" if host in self.redirect_https else "")
                                + ("h" if host in self.hsts else ""))
                for host in (self.hostname, *self.domains)}


@dataclass(frozen=True)
class Server:
    name: str  # unique for the edge process's life: s1, s2, … (a name is never reused while it may be busy)
    address: str  # "127.0.0.1:PORT"


@dataclass(frozen=True)
class EdgeState:
    """What HAProxy holds: which backend serves which app at which hostname, and each backend's servers."""

    backends: Mapping[str, str] = field(default_factory=dict)  # app → backend ("b0", "b1", …)
    hosts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # app → its hosts-map entries
    servers: Mapping[str, tuple[Server, ...]] = field(default_factory=dict)  # backend → servers taking requests
    # Servers taken out of rotation whose in-flight requests may still be running; deleted once idle.
    retired: Mapping[str, tuple[Server, ...]] = field(default_factory=dict)
    next_server: int = 1

    @cached_property
    def addresses(self) -> dict[tuple[str, str], str]:
        """(backend, server name) → address, retired servers included: what `show stat` rows and request log
        lines refer to (computed once per state: it is looked up for every request)."""
        return {(backend, s.name): s.address for table in (self.servers, self.retired)
                for backend, servers in table.items() for s in servers}

    def routes_to(self, app: str, address: str) -> bool:
        backend = self.backends.get(app)
        return backend is not None and any(s.address == address for s in self.servers.get(backend, ()))


def backend_name(index: int) -> str:
    return f"b{index}"


def map_value(backend: str, app: str, flags: str = "") -> str:
    # The frontend splits it: the backend to use, the app's name for the pages the edge answers itself, and
    # what to do for plain HTTP (r) and HTTPS (h) requests to this hostname.
    return f"{backend}:{app}:{flags}"


def plan(state: EdgeState, desired: Sequence[AppRoute], pool: int,
         hosts_map: str) -> tuple[EdgeState, list[str]]:
    """The state that serves `desired`, and the runtime-API commands that get HAProxy there, in order.

    A new app's servers are enabled before its hostname is mapped, so its first request finds them; a
    removed app's hostname goes first, then its servers. A server leaving rotation is disabled (no new
    requests; in-flight ones finish) and listed as retired until `deletions` finds it idle.
    """
    commands: list[str] = []
    backends = dict(state.backends)
    hosts = dict(state.hosts)
    servers = {b: tuple(s) for b, s in state.servers.items()}
    retired = {b: tuple(s) for b, s in state.retired.items()}
    counter = state.next_server
    wanted = {route.app: route for route in desired}

    for app in sorted(set(backends) - set(wanted)):
        backend = backends.pop(app)
        commands += [f"del map {hosts_map} {host}" for host in sorted(hosts.pop(app))]
        gone = servers.pop(backend, ())
        commands += [f"disable server {backend}/{s.name}" for s in gone]
        retired[backend] = retired.get(backend, ()) + gone

    claimed = {host: app for app, route in wanted.items() for host in (route.hostname, *route.domains)}
    for app, route in sorted(wanted.items()):
        if app not in backends:
            backends[app] = free_backend(backends.values(), retired, pool)
        backend = backends[app]
        current = servers.get(backend, ())
        keep = tuple(s for s in current if s.address in route.upstreams)
        leaving = tuple(s for s in current if s.address not in route.upstreams)
        added = []
        for address in route.upstreams:
            if address in {s.address for s in keep} or address in {s.address for s in added}:
                continue
            server = Server(f"s{counter}", address)
            counter += 1
            added.append(server)
            commands += [f"add server {backend}/{server.name} {address}", f"enable server {backend}/{server.name}"]
        commands += [f"disable server {backend}/{s.name}" for s in leaving]
        servers[backend] = keep + tuple(added)
        if leaving:
            retired[backend] = retired.get(backend, ()) + leaving
        # Map entries last: a new hostname finds its servers. One a route dropped goes, unless another app
        # now claims it (then that app's `set`/`add` below replaces it).
        before, after = hosts.get(app, {}), route.entries(backend)
        commands += [f"del map {hosts_map} {host}" for host in sorted(set(before) - set(after))
                     if claimed.get(host) in (None, app)]
        for host, value in sorted(after.items()):
            if before.get(host) != value:
                verb = "set" if host in before or any(host in hosts.get(a, {}) for a in hosts if a != app) else "add"
                commands.append(f"{verb} map {hosts_map} {host} {value}")
        hosts[app] = after

    servers = {b: s for b, s in servers.items() if s}
    retired = {b: s for b, s in retired.items() if s}
    return EdgeState(backends, hosts, servers, retired, counter), commands


def free_backend(taken: Iterable[str], retired: Mapping[str, tuple[Server, ...]], pool: int) -> str:
    """The lowest backend no app holds and no retired server still drains from (its requests must not be
    counted as a new app's)."""
    busy = set(taken) | {b for b, servers in retired.items() if servers}
    for index in range(pool):
        if backend_name(index) not in busy:
            return backend_name(index)
    raise PlatformError(f"The edge has room for {pool} apps, and all are taken.",
                        hint="Start `shipyard up` with a larger SHIPYARD_EDGE_BACKENDS (each costs a few kB).")


def deletions(state: EdgeState, in_flight: Mapping[tuple[str, str], int]) -> tuple[EdgeState, list[str]]:
    """Retired servers with nothing in flight are deleted (`del server` needs them disabled and idle)."""
    commands: list[str] = []
    left: dict[str, tuple[Server, ...]] = {}
    for backend, servers in state.retired.items():
        busy = tuple(s for s in servers if in_flight.get((backend, s.name), 0) > 0)
        commands += [f"del server {backend}/{s.name}" for s in servers if s not in busy]
        if busy:
            left[backend] = busy
    return replace(state, retired=left), commands


def restarted(state: EdgeState) -> EdgeState:
    """A new HAProxy process starts with the state's servers in its config, none retired, names kept."""
    return replace(state, retired={})
