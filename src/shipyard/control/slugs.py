"""Slugs on disk as the platform uses them: what a release runs with and sees, and which slugs are kept."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from shipyard.buildpack.manifest import Manifest
from shipyard.buildpack.ownership import freeze
from shipyard.buildpack.python import Interpreter
from shipyard.proc import find_binary
from shipyard.release.plan import ReleaseTarget, builds_to_prune
from shipyard.runtime.limits import size_named, web_concurrency
from shipyard.settings import Settings
from shipyard.store import records
from shipyard.store.store import Store


def release_target(settings: Settings, app: records.App, release: records.Release,
                   interpreters: Sequence[Interpreter], shared_files: Sequence[Path]) -> ReleaseTarget:
    manifest = Manifest.from_json(release.build.manifest)
    size = size_named(app.size)
    slug = Path(release.build.slug_path)
    uv = find_binary("uv", "uv").resolve()
    return ReleaseTarget(app=release.app, version=release.version, slug_path=slug,
                         process_types=manifest.process_types, config={**manifest.env, **release.config},
                         hostname=settings.app_hostname(release.app), external_url=settings.app_url(release.app, https=bool(app.redirect_https)),
                         boot_timeout=float(app.boot_timeout),
                         web_concurrency=int(release.config.get("WEB_CONCURRENCY") or web_concurrency(size)),
                         fixed_port=app.port, formation=app.formation, health_path=app.health_path,
                         uid=settings.app_uid(app.id), size=size,
                         read_only=readable_paths(settings, app.name, slug, manifest.python, interpreters,
                                                  (*shared_files, uv)),
                         framework=manifest.framework, uv=uv)


def readable_paths(settings: Settings, app: str, slug: Path, python: str, interpreters: Sequence[Interpreter],
                   shared_files: Sequence[Path]) -> tuple[Path, ...]:
    """What an app's processes may read besides their app directory: their slug and virtualenv, the
    interpreter the venv links to, and the shared files (the CA certificate PGSSLROOTCERT names).

    Nothing here comes from a path a build or a config var chose: the venv must lie in the app's own
    slugs folder, the interpreter is one the platform discovered, the shared files are the platform's.
    """
    paths = [slug]
    venv = (slug / "venv").resolve()
    if venv.is_relative_to((settings.slugs_dir / app).resolve()) and not venv.is_relative_to(slug):
        paths.append(venv)  # a reused venv lives beside the slugs
    for interpreter in interpreters:
        if str(interpreter.version) == python and not interpreter.path.is_relative_to("/usr"):
            paths.append(interpreter.path.parent.parent)
    paths += [f for f in shared_files if f.is_file()]
    return tuple(paths)


def adopt_slugs(settings: Settings, store: Store, app: records.App) -> int:
    """Slugs built before apps ran as their own uids (a data directory from an older Shipyard) are frozen
    for the app's uid at start, so the sandboxed instances can read them. Idempotent: a slug already
    owned by the app's uid is left alone. Returns how many were adopted."""
    uid = settings.app_uid(app.id)
    adopted = 0
    for release in store.list_releases(app.name):
        slug = Path(release.build.slug_path)
        venv = (slug / "venv").resolve()
        for tree in (slug, venv if venv.is_relative_to((settings.slugs_dir / app.name).resolve()) else None):
            if tree is not None and tree.is_dir() and not tree.is_symlink() and tree.stat().st_uid != uid:
                freeze(tree, uid, uid)
                adopted += 1
    return adopted


def prune_slugs(settings: Settings, store: Store, name: str, current: int) -> None:
    """Delete slugs beyond the kept releases, and virtualenvs no kept slug uses."""
    releases = store.list_releases(name)
    prune = builds_to_prune([(r.version, r.build.id) for r in releases], current, settings.releases_kept)
    kept_venvs = set()
    for r in releases:
        slug = Path(r.build.slug_path)
        if r.build.id in prune:
            shutil.rmtree(slug, ignore_errors=True)
        elif (slug / "venv").is_symlink():
            kept_venvs.add((slug / "venv").resolve())
    venvs = settings.slugs_dir / name / "venvs"
    if prune and venvs.is_dir():
        for venv in venvs.iterdir():  # builds may have left links here: removed, never followed
            if venv.is_symlink():
                venv.unlink()
            elif venv.is_dir() and venv.resolve() not in kept_venvs:
                shutil.rmtree(venv, ignore_errors=True)
