"""The edge's configuration as values: a pure function from apps and their live instances to Caddy JSON.

Nothing here talks to Caddy; `shipyard.edge.caddy` sends these values through the admin API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SERVER = "edge"  # the one HTTP server apps are served on; its routes are what `Edge.apply` replaces
NOT_FOUND_ID = "not-found"

# The proxy's own failures (instance refused, dropped or timed out the connection). Other errors keep
# Caddy's defaults: they are not something `shipyard logs` can explain.
PROXY_FAILURES = (502, 503, 504)


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


def proxy(upstreams: Sequence[str]) -> dict:
    # Deliberately no health checks and no retries: passive checks count a booting instance's refused
    # connections and mark it down, and requests parked in the retry loop (try_duration) fail with a
    # 502 at every config change. Only instances the supervisor found healthy are listed here.
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": u} for u in upstreams],
        "load_balancing": {"selection_policy": {"policy": "round_robin"}},
    }


def app_route(route: AppRoute) -> dict:
    if route.upstreams:
        handle = [{"handler": "vars", "app": route.app}, proxy(route.upstreams)]
    else:
        handle = [text_response(503, no_instance_body(route.app))]
    return {"@id": f"app-{route.app}", "match": [{"host": [route.hostname]}], "handle": handle, "terminal": True}


def not_found_route() -> dict:
    # Without a catch-all, Caddy answers an unknown Host with an empty 200.
    return {"@id": NOT_FOUND_ID, "handle": [text_response(404, NOT_FOUND_BODY)], "terminal": True}


def route_table(apps: Sequence[AppRoute]) -> list[dict]:
    """One terminal route per app, sorted by name (so equal inputs give equal tables), then a 404."""
    return [app_route(a) for a in sorted(apps, key=lambda a: a.app)] + [not_found_route()]


def error_routes() -> list[dict]:
    codes = ", ".join(str(c) for c in PROXY_FAILURES)
    return [{
        "match": [{"expression": f"{{http.error.status_code}} in [{codes}]"}],
        "handle": [text_response(503, NOT_ANSWERING_BODY)],
        "terminal": True,
    }]


def caddy_config(*, admin_socket: Path, listen: str, apps: Sequence[AppRoute]) -> dict:
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
            "routes": route_table(apps),
            "errors": {"routes": error_routes()},
            # No access logs yet: on stderr they would grow the edge's log file without rotation.
        }}}},
    }
