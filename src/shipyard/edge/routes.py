"""The edge's route table: a pure function from apps and their live instances to Caddy JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SERVER = "edge"


@dataclass(frozen=True)
class AppRoute:
    app: str
    hostname: str
    upstreams: tuple[str, ...]  # "127.0.0.1:PORT" dial addresses; empty = no healthy instance


def text_response(status: int, body: str) -> dict:
    return {"handler": "static_response", "status_code": status, "body": body,
            "headers": {"Content-Type": ["text/plain; charset=utf-8"], "Cache-Control": ["no-store"]}}


def no_instance_body(app: str) -> str:
    return (f"Application '{app}' has no running instance.\n"
            f"Deploy it with `git push`, or see why with `shipyard logs {app}`.\n")


def app_route(route: AppRoute) -> dict:
    if route.upstreams:
        handler = {"handler": "reverse_proxy", "upstreams": [{"dial": u} for u in route.upstreams],
                   "load_balancing": {"selection_policy": {"policy": "round_robin"}}}
    else:
        handler = text_response(503, no_instance_body(route.app))
    return {"@id": f"app-{route.app}", "match": [{"host": [route.hostname]}], "handle": [handler],
            "terminal": True}


NOT_FOUND_ROUTE = {
    "@id": "not-found",
    "handle": [text_response(404, "No application is served at this address.\n"
                                  "Check the app's name and URL with `shipyard apps`.\n")],
    "terminal": True,
}

# A proxy error (the instance refused or dropped the connection) becomes a 503 with a hint, not an empty 502.
ERROR_ROUTES = [{
    "handle": [text_response(503, "The application at {http.request.host} is not answering "
                                  "({http.error.status_code} from its instance).\n"
                                  "See `shipyard logs <app>` for what it printed.\n")],
}]


def route_table(apps: Sequence[AppRoute]) -> list[dict]:
    return [app_route(a) for a in sorted(apps, key=lambda a: a.app)] + [NOT_FOUND_ROUTE]


def caddy_config(*, admin_socket: Path, listen: str, apps: Sequence[AppRoute]) -> dict:
    return {
        # The unix socket's mode is the admin API's only protection: the platform's user alone.
        "admin": {"listen": f"unix/{admin_socket}|0600", "config": {"persist": False}},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {"http": {"servers": {SERVER: {
            "listen": [listen],
            "automatic_https": {"disable": True},
            "routes": route_table(apps),
            "errors": {"routes": ERROR_ROUTES},
        }}}},
    }
