"""Variables a repository written for another platform expects that platform to set.

Shipyard sets no platform's identity by default: Heroku's `DYNO` turned on HTTPS redirects that loop on a
plain-HTTP edge, and Render's `RENDER` makes some apps write to `/data`. But a repository that carries
`render.yaml` (a Render Blueprint) says it was written for Render, and its code reads `RENDER` to mean "in
production": DEBUG off, STATIC_ROOT set, so its own `build.sh`'s collectstatic works. For such a
repository Shipyard sets what Render sets on every service, at build and run time; the app's config vars
still win. The hostname variables (RENDER_EXTERNAL_HOSTNAME/URL) are set for every app at run time, by the
release stage, since they only name the app's own address.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

RENDER_BLUEPRINT = "render.yaml"


@dataclass(frozen=True)
class PlatformEnv:
    platform: str  # whose variables, for the build log; "" when none apply
    env: dict[str, str] = field(default_factory=dict)


def platform_env(files: Mapping[str, str]) -> PlatformEnv:
    """What the platform the repository was written for would set, judged by its platform file."""
    if RENDER_BLUEPRINT in files:
        return PlatformEnv("Render (render.yaml)", {"RENDER": "true", "IS_PULL_REQUEST": "false"})
    return PlatformEnv("")
