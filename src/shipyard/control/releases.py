"""What a new release runs, decided from the store: its release command, and which release a rollback takes."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from shipyard.buildpack.manifest import Manifest
from shipyard.buildpack.preflight import check_release_command
from shipyard.errors import InvalidInput
from shipyard.release.plan import effective_formation, rollback_target, with_release_command
from shipyard.store import records
from shipyard.store.names import validate_command
from shipyard.store.store import Store


async def release_command_of(app: records.App, manifest: Manifest, log: Callable[[str], Awaitable[None]]) -> Manifest:
    """The build's manifest with the app's release command setting in it (Render's pre-deploy command).

    Kept with the build, so a config change or a rollback to this build runs the same command as its push did:
    a release never runs another release's migrations.
    """
    if not app.release_command.strip():
        return manifest
    procfile = manifest.process_types.get("release")
    instead = f" (instead of the Procfile's `release: {procfile}`)" if procfile else ""
    await log(f"-----> Release command from the app's settings: {app.release_command.strip()}{instead}")
    return dataclasses.replace(manifest, process_types=with_release_command(manifest.process_types,
                                                                            app.release_command))


def previous_release(store: Store, app: records.App) -> int:
    """The release `shipyard rollback APP` goes back to when no version is given."""
    releases = store.list_releases(app.name)
    version = rollback_target([(r.version, r.status) for r in releases], app.current_release)
    if version is None:
        live = f"v{app.current_release} is the first release that went live" if app.current_release else \
            "it has no live release yet"
        raise InvalidInput(f"{app.name} has no earlier release to roll back to: {live}.",
                           hint=f"See `shipyard releases {app.name}`, and name one: `shipyard rollback {app.name} vN`.")
    return version


def formation_of(store: Store, app: records.App, manifest_json: str | None = None) -> dict[str, int]:
    """Instances per process type of the live release, defaults included (web 1, others 0 until scaled).
    `manifest_json`: the live release's manifest if the caller read it already (Store.live_manifests)."""
    if app.current_release is None:
        return dict(app.formation)
    if manifest_json is None:
        manifest_json = store.get_release(app.name, app.current_release).build.manifest
    manifest = Manifest.from_json(manifest_json)
    return effective_formation(manifest.process_types, app.formation)


def validate_release_command(command: str) -> str:
    """`apps set --release-command`: checked when set, as a Procfile's `release:` is at pre-flight."""
    validate_command(command)
    if check_release_command({"release": command}):
        raise InvalidInput(f"The release command starts a server: `{command}`.",
                           hint="It runs once before each release goes live and must exit (e.g. `flask db upgrade`, "
                                "`python manage.py migrate`); the start command runs the server.")
    return command
