"""The edge's configuration as values: pure functions from apps and their live instances to Caddy JSON.

Every Caddy config change restarts its HTTP server, and Go's Server.Shutdown closes idle keep-alive
connections, so a request a client was just sending on one gets no response (golang/go#75591). So the
route table names no instance: each app's proxy dials `SLOTS` upstreams whose addresses Caddy reads, per
request, from small files (the `{file.*}` placeholder), and instance changes rewrite those files only.
An app with no running instance has its slots point at a second server of the edge's own ("parked")
that answers 503 with a hint. So the config changes only when an app is created or destroyed.

Nothing here talks to Caddy or writes files; `shipyard.edge.caddy` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SERVER = "edge"  # the one HTTP server apps are served on; its routes are what `Edge.apply` replaces
PARKED = "parked"  # on loopback: where the slots of an app with no running instance point
NOT_FOUND_ID = "not-found"

# The proxy's own failures (instance refused, dropped or timed out the connection). Other errors keep
# Caddy's defaults: they are not something `shipyard logs` can explain.
PROXY_FAILURES = (502, 503, 504)


# Upstream entries per app. Round-robin over the slots spreads requests evenly over any instance count
# that divides 60 (1–6, 10, 12, …) and within one slot's share (2 %) of even for the others.
SLOTS = 60
# How long a request whose instance refused the connection (it was just stopped or crashed) keeps
# trying: each try re-reads the slot files, which by then name the running instances. An app whose only
# instance crashed keeps it in its slots while it restarts, so requests wait here for it to listen
# (bounded) instead of getting a 503.
TRY_DURATION = "10s"
TRY_INTERVAL = "50ms"


@dataclass(frozen=True)
class AppRoute:
    app: str  # app name, a DNS label
    hostname: str  # e.g. "todo.localhost"
    upstreams: tuple[str, ...]  # dial addresses "127.0.0.1:PORT"; empty = no healthy instance


def text_response(status: int, body: str) -> dict:
    # no-store: these pages describe a moment (nothing deployed yet, instance restarting); a cached
    # copy would outlive the fix.
    return {
        "handler": "static_response",
        "status_code": status,
        "headers": {"Content-Type": ["text/plain; charset=utf-8"], "Cache-Control": ["no-store"]},
        "body": body,
    }


def no_instance_body(app: str) -> str:
    return (f"Application '{app}' has no running instance.\n"
            f"Deploy it with `git push`, or see why with `shipyard logs {app}`.\n")


NOT_FOUND_BODY = ("No application is served at this address.\n"
                  "Check the app's name and URL with `shipyard apps`.\n")

# One error route serves every app, so it names the app through the `app` variable that each app's
# route sets before proxying (and the host, which a user recognises too).
NOT_ANSWERING_BODY = ("Application '{http.vars.app}' at {http.request.host} is not answering "
                      "({http.error.status_code} {http.error.status_text} from the edge).\n"
                      "See why with `shipyard logs {http.vars.app}`.\n")


def slot_addresses(upstreams: Sequence[str], parked: str) -> list[str]:
    """What each of an app's slot files holds: its instances' dial addresses in turn, else the parked server."""
    return [upstreams[i % len(upstreams)] for i in range(SLOTS)] if upstreams else [parked] * SLOTS


def slot_file(slot_dir: Path, app: str, slot: int) -> Path:
    return slot_dir / app / str(slot)


def proxy(slot_dir: Path, app: str) -> dict:
    # No health checks: only instances the supervisor found healthy are in the slot files, and passive
    # checks would count a crashed instance's refused connections against the slot, not the instance.
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": f"{{file.{slot_file(slot_dir, app, i)}}}"} for i in range(SLOTS)],
        "load_balancing": {"selection_policy": {"policy": "round_robin"},
                           "try_duration": TRY_DURATION, "try_interval": TRY_INTERVAL},
    }


def app_route(route: AppRoute, slot_dir: Path) -> dict:
    handle = [{"handler": "vars", "app": route.app}, proxy(slot_dir, route.app)]
    return {"@id": f"app-{route.app}", "match": [{"host": [route.hostname]}], "handle": handle, "terminal": True}


def app_name_placeholder(base_domain: str) -> str:
    """The app's name in a request for `<app>.<base_domain>`: Caddy counts host labels from the right."""
    return f"{{http.request.host.labels.{len(base_domain.split('.'))}}}"


def parked_server(listen: str, base_domain: str) -> dict:
    """Answers every request the proxy sends it (the Host header is passed through) with the 503 hint."""
    return {
        "listen": [listen],
        "automatic_https": {"disable": True},
        "routes": [{"handle": [text_response(503, no_instance_body(app_name_placeholder(base_domain)))],
                    "terminal": True}],
    }


def not_found_route() -> dict:
    # Without a catch-all, Caddy answers an unknown Host with an empty 200.
    return {"@id": NOT_FOUND_ID, "handle": [text_response(404, NOT_FOUND_BODY)], "terminal": True}


def route_table(apps: Sequence[AppRoute], slot_dir: Path) -> list[dict]:
    """One terminal route per app, sorted by name (so equal inputs give equal tables), then a 404.

    Which instances an app has, if any, does not change the table.
    """
    return [app_route(a, slot_dir) for a in sorted(apps, key=lambda a: a.app)] + [not_found_route()]


def error_routes() -> list[dict]:
    codes = ", ".join(str(c) for c in PROXY_FAILURES)
    return [{
        "match": [{"expression": f"{{http.error.status_code}} in [{codes}]"}],
        "handle": [text_response(503, NOT_ANSWERING_BODY)],
        "terminal": True,
    }]


def caddy_config(*, admin_socket: Path, listen: str, parked_listen: str, base_domain: str,
                 apps: Sequence[AppRoute], slot_dir: Path) -> dict:
    """The whole config Caddy starts with; afterwards only the edge server's routes change."""
    return {
        # The socket's mode is the admin API's only protection (no host checks on unix sockets); an
        # admin API on TCP localhost would be reachable by every app. The platform rebuilds the routes
        # on every start, so Caddy must not resume an old config of its own.
        "admin": {"listen": f"unix/{admin_socket}|0600", "config": {"persist": False}},
        # The platform polls the admin API (draining, route changes); log its errors only.
        "logging": {"logs": {"default": {"exclude": ["admin.api"]},
                             "admin": {"include": ["admin.api"], "level": "WARN"}}},
        "apps": {"http": {"servers": {SERVER: {
            "listen": [listen],
            # Plain HTTP only: no certificates, no extra :80 redirect listener.
            "automatic_https": {"disable": True},
            "routes": route_table(apps, slot_dir),
            "errors": {"routes": error_routes()},
            # No access logs yet: on stderr they would grow the edge's log file without rotation.
        }, PARKED: parked_server(parked_listen, base_domain)}}},
    }
