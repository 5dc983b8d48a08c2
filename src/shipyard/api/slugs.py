"""Slugs on disk as the platform uses them: what a release runs with and sees, and which slugs are kept."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from shipyard.build.manifest import Manifest
from shipyard.build.python import Interpreter
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
    return ReleaseTarget(app=release.app, version=release.version, slug_path=slug,
                         process_types=manifest.process_types, config={**manifest.env, **release.config},
                         hostname=settings.app_hostname(release.app), external_url=settings.app_url(release.app),
                         boot_timeout=float(app.boot_timeout),
                         web_concurrency=int(release.config.get("WEB_CONCURRENCY") or web_concurrency(size)),
                         fixed_port=app.port, formation=app.formation, health_path=app.health_path,
                         uid=settings.app_uid(app.id), size=size,
                         read_only=readable_paths(settings, app.name, slug, manifest.python, interpreters,
                                                  shared_files))


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
