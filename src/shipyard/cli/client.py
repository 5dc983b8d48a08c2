"""How the CLI finds and talks to a platform: local data directory, or SHIPYARD_API_URL + SHIPYARD_TOKEN."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shipyard.errors import PlatformError, ShipyardError
from shipyard.settings import Settings


@dataclass(frozen=True)
class Target:
    api_url: str
    token: str


def find_target(data_dir: Path | None) -> Target:
    env_url, env_token = os.environ.get("SHIPYARD_API_URL"), os.environ.get("SHIPYARD_TOKEN")
    settings = Settings(data_dir=data_dir) if data_dir else Settings()
    if env_url and not data_dir:
        if not env_token:
            raise ShipyardError("SHIPYARD_API_URL is set but SHIPYARD_TOKEN is not.",
                                hint="Set SHIPYARD_TOKEN to the token of that platform (its data directory's `token` file).")
        return Target(env_url.rstrip("/"), env_token)
    try:
        state = json.loads(settings.state_file.read_text())
        token = env_token or settings.token_file.read_text().strip()
    except (OSError, ValueError):
        raise ShipyardError(f"Shipyard is not running on {settings.data_dir}.",
                            hint="Start it with `shipyard up`, or point at a remote one with "
                                 "SHIPYARD_API_URL and SHIPYARD_TOKEN.") from None
    return Target(str(state["api_url"]), token)


class Client:
    def __init__(self, target: Target) -> None:
        self.target = target
        self._http = httpx.Client(base_url=target.api_url, headers={"Authorization": f"Bearer {target.token}"},
                                  timeout=httpx.Timeout(30, read=None))

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise self._unreachable() from None
        check(response)
        return response.json() if response.content else None

    def stream_lines(self, path: str, method: str = "GET", json: Any = None, **params: Any) -> Iterator[str]:
        try:
            with self._http.stream(method, path, params=params, json=json) as response:
                if response.status_code >= 400:
                    response.read()
                    check(response)
                yield from response.iter_lines()
        except httpx.ConnectError:
            raise self._unreachable() from None

    def _unreachable(self) -> ShipyardError:
        return PlatformError(f"Cannot reach Shipyard at {self.target.api_url}.",
                             hint="Is `shipyard up` running? Start it, or check SHIPYARD_API_URL.")


def check(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        error = ShipyardError(body.get("error") or describe_detail(body.get("detail")), hint=body.get("hint"))
    except ValueError:
        error = ShipyardError(f"Shipyard answered {response.status_code}: {response.text[:200]}")
    error.status_code = response.status_code
    raise error


def describe_detail(detail: object) -> str:
    """FastAPI's validation errors (a list of {loc, msg}) as one readable line."""
    if isinstance(detail, list):
        parts = [f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
                 if isinstance(d, dict)]
        return "Invalid request: " + "; ".join(parts)
    return str(detail)
