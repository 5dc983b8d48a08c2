"""Validation of names users choose: pure functions with user-facing errors."""

from __future__ import annotations

import re

from shipyard.errors import InvalidInput

_APP_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names the platform sets itself; a user value would silently break routing or the build.
RESERVED_CONFIG_KEYS = frozenset({"PORT", "EXTERNAL_URL", "EXTERNAL_HOSTNAME", "FORWARDED_ALLOW_IPS",
                                  "SHIPYARD_TRUST_PROXY_DEPTH", "PATH", "HOME", "VIRTUAL_ENV"})


def validate_app_name(name: str) -> str:
    if not _APP_NAME.match(name):
        raise InvalidInput(
            f"'{name}' is not a valid app name.",
            hint="Use 1-30 lowercase letters, digits and dashes, starting with a letter and not "
            "ending with a dash (it becomes a DNS label, e.g. `todo` or `my-blog-2`).",
        )
    return name


def validate_config_key(key: str) -> str:
    if not _CONFIG_KEY.match(key):
        raise InvalidInput(
            f"'{key}' is not a valid config var name.",
            hint="Use letters, digits and underscores, not starting with a digit (e.g. SECRET_KEY).",
        )
    if key in RESERVED_CONFIG_KEYS:
        raise InvalidInput(f"{key} is set by Shipyard and cannot be changed.",
                           hint="Shipyard sets PORT, EXTERNAL_URL, EXTERNAL_HOSTNAME and FORWARDED_ALLOW_IPS itself; choose another name.")
    return key


def validate_branch(branch: str) -> str:
    if not branch or branch.startswith("-") or ".." in branch or any(c in branch for c in " ~^:?*[\\"):
        raise InvalidInput(f"'{branch}' is not a valid branch name.", hint="Use a plain branch name such as `main`.")
    return branch
