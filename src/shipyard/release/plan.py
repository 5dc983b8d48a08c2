"""From a release to what runs: the environment contract and the instance specs (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from dataclasses import dataclass
from pathlib import Path

from shipyard.runtime.limits import SIZES, Size
from shipyard.runtime.spec import InstanceSpec

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class ReleaseTarget:
    """Everything a release needs to run, as plain values."""

    app: str
    version: int
    slug_path: Path
    process_types: Mapping[str, str]
    config: Mapping[str, str]
    hostname: str
    external_url: str
    boot_timeout: float
    web_concurrency: int
    formation: Mapping[str, int] = None  # type: ignore[assignment]
    fixed_port: int | None = None  # for apps that ignore $PORT: PORT is set to it and the edge routes there
    health_path: str = ""
    uid: int | None = None  # the app's own uid (None: unconfined)
    size: Size = SIZES["small"]
    read_only: tuple[Path, ...] = ()  # what its processes may read: slug, venv, interpreter, CA certificate
    framework: str | None = None  # the manifest's: django | asgi | wsgi
    uv: Path | None = None  # uv's binary (also in read_only): Render's `uv run gunicorn …` start commands

    def scale(self, process_type: str) -> int:
        return (self.formation or {}).get(process_type, default_scale(process_type))


def default_scale(process_type: str) -> int:
    """As on Heroku: one web instance, every other type at 0 until scaled (a `worker:` whose Redis is not
    there yet must not reject the deploy of a working web process)."""
    return 1 if process_type == "web" else 0


def effective_formation(process_types: Mapping[str, str], formation: Mapping[str, int]) -> dict[str, int]:
    """How many instances of each type run: the stored formation, the defaults for the types it lacks."""
    types = {t: default_scale(t) for t in process_types if t != "release"}
    return dict(sorted({**types, **formation}.items()))


def unscaled_types(process_types: Mapping[str, str], formation: Mapping[str, int]) -> list[str]:
    """Types at 0 only because nobody scaled them yet: the deploy says how to run them (an explicit 0 is a
    choice, and is not repeated at every push)."""
    return sorted(t for t in process_types if default_scale(t) == 0 and t != "release" and t not in formation)


def rollback_target(releases: Sequence[tuple[int, str]], current: int | None) -> int | None:
    """`shipyard rollback APP` without a version, as on Heroku: the newest release before the live one that
    went live itself ((version, status) pairs; failed and interrupted ones never served)."""
    if current is None:
        return None
    earlier = [version for version, status in releases if version < current and status == "succeeded"]
    return max(earlier, default=None)


def runtime_env(target: ReleaseTarget) -> dict[str, str]:
    """The environment an instance sees (design.md's contract); user config wins where allowed."""
    venv = target.slug_path / "venv"
    env = {
        "PATH": f"{venv / 'bin'}:{SYSTEM_PATH}" + (f":{target.uv.parent}" if target.uv else ""),
        "VIRTUAL_ENV": str(venv),
        **(uv_run_env(venv) if target.uv else {}),
        # As on Heroku (/app): a shell finds the app's own dotfiles, never the platform user's.
        "HOME": str(target.slug_path / "app"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        # No passwd entry exists for an app's uid: tools that ask for a user name get the app's.
        "USER": target.app,
        "LOGNAME": target.app,
        "WEB_CONCURRENCY": str(target.web_concurrency),
        "SHIPYARD_APP": target.app,
        "SHIPYARD_RELEASE": f"v{target.version}",
        # Apps written for Render add this to ALLOWED_HOSTS or build links from it; it names only the app's own
        # address, so it is set for every app (Render's identity, RENDER, is not: see buildpack/compat.py).
        "RENDER_EXTERNAL_HOSTNAME": target.hostname,
        "RENDER_EXTERNAL_URL": target.external_url,
    }
    env.update(target.config)
    # Set last: the platform owns these and routing depends on them.
    env.update({
        "EXTERNAL_HOSTNAME": target.hostname,
        "EXTERNAL_URL": target.external_url,
        # Only the edge, on loopback, may set X-Forwarded-*.
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "SHIPYARD_TRUST_PROXY_DEPTH": "1",
    })
    return env


def uv_run_env(venv: Path) -> dict[str, str]:
    """`uv run CMD` as a start command (Render's build image is its run image, so uv is there): it runs CMD in
    the app's venv as built, never syncing it (the venv is read-only at run time) nor fetching a Python."""
    return {"UV_PROJECT_ENVIRONMENT": str(venv), "UV_NO_SYNC": "1", "UV_PYTHON_DOWNLOADS": "never",
            "UV_CACHE_DIR": "/tmp/uv-cache"}


def migration_check_spec(target: ReleaseTarget) -> InstanceSpec | None:
    """For a Django app with a database whose web answered 500 at start: Django's own list of migrations not
    applied yet (`migrate --plan` changes nothing), the usual cause when nothing runs `migrate`."""
    if target.framework != "django" or not target.config.get("DATABASE_URL"):
        return None
    return InstanceSpec(app=target.app, release=target.version, process_type="check", index=1,
                        command="python manage.py migrate --plan --noinput", cwd=target.slug_path / "app",
                        env=runtime_env(target), boot_timeout=target.boot_timeout, **confinement(target))


def unapplied_migrations(plan_output: Sequence[str]) -> list[str]:
    """The migrations `manage.py migrate --plan` lists (`shortener.0001_initial`, each at the start of a line;
    their operations are indented). Only the output's last lines may be at hand: any such line counts."""
    return [line.strip() for line in plan_output
            if line[:1].strip() and re.fullmatch(r"\w+\.\w+", line.strip())]


def with_release_command(process_types: Mapping[str, str], setting: str) -> dict[str, str]:
    """The app's release command setting wins over the Procfile's `release:`, as its start command setting wins
    over `web:`: what the user set last, on the platform, is what runs."""
    types = dict(process_types)
    if setting.strip():
        types["release"] = setting.strip()
    return types


def builds_to_prune(releases: list[tuple[int, int]], current: int | None, keep: int) -> set[int]:
    """Build ids no longer needed: (version, build_id) pairs, newest `keep` releases and the live one stay."""
    ordered = sorted(releases, reverse=True)
    kept = {build for _, build in ordered[:keep]} | {build for version, build in ordered if version == current}
    return {build for _, build in ordered} - kept


def confinement(target: ReleaseTarget) -> dict[str, Any]:
    """The sandbox fields every process of the release shares."""
    return {"uid": target.uid, "size": target.size, "read_only": target.read_only}


def release_phase_spec(target: ReleaseTarget) -> InstanceSpec | None:
    """The release command (the app's setting or the Procfile's `release:`), run once per release before it
    goes live."""
    command = target.process_types.get("release")
    if not command:
        return None
    return InstanceSpec(app=target.app, release=target.version, process_type="release", index=1, command=command,
                        cwd=target.slug_path / "app", env=runtime_env(target), boot_timeout=target.boot_timeout,
                        **confinement(target))


def one_off_spec(target: ReleaseTarget, command: str, index: int) -> InstanceSpec:
    """`shipyard run`: a command in the release's environment and directory, named run.N."""
    return InstanceSpec(app=target.app, release=target.version, process_type="run", index=index, command=command,
                        cwd=target.slug_path / "app", env=runtime_env(target), boot_timeout=target.boot_timeout,
                        **confinement(target))


def instance_specs(target: ReleaseTarget) -> list[InstanceSpec]:
    env = runtime_env(target)
    specs: list[InstanceSpec] = []
    for process_type, command in sorted(target.process_types.items()):
        if process_type == "release":
            continue  # the release phase runs once per release, not as an instance
        for index in range(1, target.scale(process_type) + 1):
            specs.append(InstanceSpec(app=target.app, release=target.version, process_type=process_type,
                                      index=index, command=command, cwd=target.slug_path / "app",
                                      env=env, boot_timeout=target.boot_timeout,
                                      port=target.fixed_port if process_type == "web" else None,
                                      health_path=target.health_path if process_type == "web" else "",
                                      host_header=target.hostname, **confinement(target)))
    return specs
