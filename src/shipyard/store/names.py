"""Validation of what users choose (names, config vars, commands): pure functions with user-facing errors."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from shipyard.errors import InvalidInput

# Matched with fullmatch: `$` would also accept a trailing newline ("todo\n").
_APP_NAME = re.compile(r"[a-z]([a-z0-9-]{0,28}[a-z0-9])?")
_CONFIG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Names the platform sets itself; a user value would silently break routing or the build.
RESERVED_CONFIG_KEYS = frozenset({"PORT", "EXTERNAL_URL", "EXTERNAL_HOSTNAME", "FORWARDED_ALLOW_IPS",
                                  "SHIPYARD_TRUST_PROXY_DEPTH", "PATH", "HOME", "VIRTUAL_ENV"})
# Environment sizes: the kernel refuses a single variable over 128 KB and the whole environment plus
# arguments over a few MB; these limits keep every app far below that (and the store small).
CONFIG_VALUE_LIMIT = 32 * 1024
CONFIG_TOTAL_LIMIT = 64 * 1024
COMMAND_LIMIT = 32 * 1024
_LARGE_VALUE_HINT = ("Keep large files in the app's repository (or data in an add-on such as its database) and put "
                     "a path or URL in the config var instead.")


def validate_app_name(name: str) -> str:
    if not _APP_NAME.fullmatch(name):
        raise InvalidInput(
            f"'{name}' is not a valid app name.",
            hint="Use 1-30 lowercase letters, digits and dashes, starting with a letter and not "
            "ending with a dash (it becomes a DNS label, e.g. `todo` or `my-blog-2`).",
        )
    return name


def validate_config_key(key: str) -> str:
    # Letters, digits and `_` only: a `=` or a newline in a key would split or forge entries of the
    # environment block, where values may hold both safely.
    if not _CONFIG_KEY.fullmatch(key):
        raise InvalidInput(
            f"{key!r} is not a valid config var name.",
            hint="Use letters, digits and underscores, not starting with a digit (e.g. SECRET_KEY).",
        )
    if key in RESERVED_CONFIG_KEYS:
        raise InvalidInput(f"{key} is set by Shipyard and cannot be changed.",
                           hint="Shipyard sets PORT, EXTERNAL_URL, EXTERNAL_HOSTNAME and FORWARDED_ALLOW_IPS itself; choose another name.")
    return key


def _size(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


def _is_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kb(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size % 1024 else f"{size // 1024} KB"


def validate_config_value(key: str, value: str) -> str:
    """One value: it must fit in an environment variable (no NUL byte) and stay under the value limit."""
    if "\0" in value:
        raise InvalidInput(f"The value of {key} contains a NUL byte, which an environment variable cannot hold.",
                           hint="Remove it; for binary data, store it base64-encoded (e.g. `base64 -w0 FILE`) "
                                "and decode it in the app.")
    if not _is_text(value):
        raise InvalidInput(f"The value of {key} is not valid Unicode text (it has a lone surrogate).",
                           hint="Send the value as UTF-8 text; for binary data, store it base64-encoded.")
    size = _size(value)
    if size > CONFIG_VALUE_LIMIT:
        raise InvalidInput(f"The value of {key} is {_kb(size)}; a config var can hold at most "
                           f"{_kb(CONFIG_VALUE_LIMIT)}.", hint=_LARGE_VALUE_HINT)
    return value


def config_size(config: Mapping[str, str]) -> int:
    """What an app's config vars take in its environment: keys and values, in bytes."""
    return sum(_size(key) + _size(value) for key, value in config.items())


def validate_config_total(existing: Mapping[str, str], set_vars: Mapping[str, str], unset: Iterable[str]) -> None:
    """The app's config after the change (existing vars, minus `unset`, plus `set_vars`) within the total limit."""
    removed = set(unset)
    after = {k: v for k, v in existing.items() if k not in removed}
    after.update(set_vars)
    size = config_size(after)
    if size > CONFIG_TOTAL_LIMIT and size > config_size(existing):
        raise InvalidInput(f"With this change the app's config vars would take {_kb(size)}; an app can have at "
                           f"most {_kb(CONFIG_TOTAL_LIMIT)} of config vars in all (names and values).",
                           hint=f"{_LARGE_VALUE_HINT} `shipyard config APP` lists the vars; unset those you don't "
                                "need.")


def validate_command(command: str) -> str:
    """A command for `shipyard run`: a shell command line, passed to bash as one argument, never as options."""
    if not command.strip():
        raise InvalidInput("Give the command to run.", hint="e.g. `shipyard run APP -- python manage.py migrate`.")
    if "\0" in command:
        raise InvalidInput("The command contains a NUL byte, which no program's arguments can hold.",
                           hint="Remove it from the command.")
    if not _is_text(command):
        raise InvalidInput("The command is not valid Unicode text (it has a lone surrogate).",
                           hint="Send the command as UTF-8 text.")
    if _size(command) > COMMAND_LIMIT:
        raise InvalidInput(f"The command is {_kb(_size(command))}; a command can be at most {_kb(COMMAND_LIMIT)}.",
                           hint="Put long scripts in a file in the app's repository and run that file.")
    return command


def validate_branch(branch: str) -> str:
    if not branch or branch.startswith("-") or ".." in branch or any(c in branch for c in " ~^:?*[\\\n\r\t\0"):
        raise InvalidInput(f"'{branch}' is not a valid branch name.", hint="Use a plain branch name such as `main`.")
    return branch


_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})+")


def validate_domain(hostname: str) -> str:
    """A custom domain, lower-cased without a trailing dot: at least two DNS labels, no wildcard, no IP."""
    name = hostname.strip().lower().rstrip(".")
    if len(name) > 253 or not _DOMAIN.fullmatch(name) or name.replace(".", "").isdigit():
        raise InvalidInput(f"{hostname!r} is not a domain name Shipyard can serve.",
                           hint="Give a full hostname such as shop.example.com (no scheme, port, path or wildcard), "
                                "and point its DNS at this machine.")
    return name
