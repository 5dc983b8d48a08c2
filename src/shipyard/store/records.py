"""Plain immutable values the store hands out, so no caller holds an ORM session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone


@dataclass(frozen=True)
class AutoscaleBounds:
    """An autoscaled process type's bounds, and the requests in flight per instance it aims at."""

    min: int
    max: int
    target: float

    def to_json(self) -> dict[str, float]:
        return {"min": self.min, "max": self.max, "target": self.target}


@dataclass(frozen=True)
class App:
    id: int  # its uids derive from it (Settings.app_uid, Settings.build_uid)
    name: str
    branch: str
    boot_timeout: int
    current_release: int | None
    start_command: str
    build_command: str
    port: int | None
    formation: dict[str, int]
    health_path: str
    created_at: datetime
    size: str = "small"  # instance size: memory, CPU and process limits (runtime.limits.SIZES)
    release_command: str = ""  # the app's release command setting; wins over the Procfile's `release:`
    redirect_https: bool | None = None  # None: redirect once a hostname has a publicly trusted certificate
    hsts: bool = False
    # Set when the app's data in the store cannot be read (what is wrong, and the fix): the app is listed,
    # never started, and every other field holds a default.
    damage: str | None = None
    autoscale: dict[str, AutoscaleBounds] = field(default_factory=dict)

    @classmethod
    def damaged(cls, id: int, name: str, damage: str) -> App:
        return cls(id=id, name=name, branch="main", boot_timeout=240, current_release=None, start_command="",
                   build_command="", port=None, formation={}, health_path="",
                   created_at=datetime.fromtimestamp(0, timezone.utc), damage=damage)


@dataclass(frozen=True)
class Build:
    id: int
    app: str
    commit: str
    slug_path: str
    manifest: str
    created_at: datetime


@dataclass(frozen=True)
class Release:
    app: str
    version: int
    build: Build
    config: dict[str, str]
    description: str
    status: str  # deploying | succeeded | failed
    created_at: datetime


@dataclass(frozen=True)
class Domain:
    app: str
    hostname: str
    status: str  # pending | issued | failed
    detail: str
    not_after: datetime | None
