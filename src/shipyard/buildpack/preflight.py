"""Pre-flight checks: what would break at run time, found before installing anything.

Each check is a pure function returning findings; an error fails the build, a
warning is printed in the build log. Every finding carries its one-line fix.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shipyard.buildpack import nofollow

MAX_FILE_BYTES = 100 * 1024 * 1024
_SERVERS = re.compile(r"\b(gunicorn|uvicorn|hypercorn|daphne|waitress-serve|runserver|flask run)\b")
_BIND = re.compile(r"(?:--bind|-b)[= ]+['\"]?([^\s'\"]+)")
_PORT = re.compile(r"(?:--port|-p)[= ]+['\"]?([^\s'\"]+)|runserver\s+(?:[^\s:]+:)?(\d+)")
_HOST_FLAGS = re.compile(r"--host[= ]+['\"]?([^\s'\"]+)")


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning"
    message: str
    fix: str


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the repository root
    size: int
    link_target: str | None = None  # for symlinks out of the repository: where they point
    is_link: bool = False  # any symlink: never read through


def check_release_command(process_types: Mapping[str, str]) -> list[Finding]:
    release = process_types.get("release")
    if release is None or not _SERVERS.search(release):
        return []
    return [Finding("error", f"The Procfile's release command starts a server: `{release}`.",
                    "`release:` runs once per deploy and must exit (e.g. `release: flask db upgrade`); "
                    "start servers from `web:`.")]


def split_bind(value: str) -> tuple[str, str]:
    """`0.0.0.0:${PORT:-8000}` → ("0.0.0.0", "${PORT:-8000}"); `:8000` → ("", "8000")."""
    if value.startswith("unix:"):
        return "unix", ""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, rest.removeprefix(":")
    host, _, port = value.partition(":")
    return (host, port) if port else ("", host) if host.isdigit() or "$" in host else (host, "")


def check_port(command: str, fixed_port: int | None) -> list[Finding]:
    findings = []
    ports = [split_bind(m.group(1)) for m in _BIND.finditer(command)]
    ports += [("", m.group(1) or m.group(2)) for m in _PORT.finditer(command)]
    for host, port in ports:
        if port and "PORT" not in port and not (fixed_port and port == str(fixed_port)):
            findings.append(Finding(
                "error", f"The start command listens on port {port}, not on $PORT: `{command}`.",
                f"Use `$PORT` (e.g. `--bind 0.0.0.0:$PORT`), or tell Shipyard the app's fixed port with "
                f"`shipyard apps set <app> --port {port}`."))
        if host and host != "unix":
            findings += check_host(host, command)
    for match in _HOST_FLAGS.finditer(command):
        findings += check_host(match.group(1).strip("[]"), command)
    return findings


def check_host(host: str, command: str) -> list[Finding]:
    if host in ("", "0.0.0.0", "127.0.0.1", "::", "$HOST", "${HOST}"):
        return []
    if host in ("localhost", "::1"):
        return [Finding("warning", f"The start command binds {host}, which may mean IPv6 only: `{command}`.",
                        "Bind 0.0.0.0 (or 127.0.0.1): the edge reaches instances over IPv4.")]
    return [Finding("error", f"The start command binds {host}, an address instances don't have: `{command}`.",
                    "Bind 0.0.0.0, e.g. `--bind 0.0.0.0:$PORT`.")]


def check_sqlite(sources: Mapping[str, str]) -> list[Finding]:
    hits = sorted(path for path, text in sources.items() if "sqlite:///" in text)
    if not hits:
        return []
    return [Finding("warning", f"{hits[0]} uses SQLite (`sqlite:///`): the local disk is wiped on every restart.",
                    "Keep data in the PostgreSQL add-on (`shipyard addons create <app> postgres`) and read "
                    "DATABASE_URL.")]


def check_django_debug(settings_source: str | None, settings_path: str) -> list[Finding]:
    if settings_source and re.search(r"^DEBUG\s*=\s*True\b", settings_source, re.MULTILINE):
        return [Finding("warning", f"{settings_path} sets DEBUG = True: error pages show your code and settings.",
                        "Read it from the environment, e.g. `DEBUG = os.environ.get(\"DEBUG\") == \"1\"`.")]
    return []


def check_files(files: Sequence[SourceFile]) -> list[Finding]:
    findings = []
    for f in files:
        if f.link_target is not None:
            findings.append(Finding("error", f"{f.path} is a symlink to {f.link_target}, outside the repository.",
                                    "Replace the link with the file itself, or point it inside the repository."))
        elif f.size > MAX_FILE_BYTES:
            findings.append(Finding("error", f"{f.path} is {f.size // (1024 * 1024)} MB, over the "
                                             f"{MAX_FILE_BYTES // (1024 * 1024)} MB limit for a file.",
                                    "Keep large data out of the repository (object storage, or the database)."))
    return findings


def points_outside(rel: str, target: str) -> bool:
    """Whether a link at rel leaves the repository, judged from its text alone: the platform never follows it
    (a link to another link is judged on its own, so a chain out is caught at the link that leaves)."""
    if posixpath.isabs(target):
        return True
    return posixpath.normpath(posixpath.join(posixpath.dirname(rel), target)).split("/")[0] == ".."


def scan_tree(root: Path) -> list[SourceFile]:
    """The repository's files with sizes and link targets (the I/O side of check_files); links are not followed."""
    found = []
    for folder, dirs, files in os.walk(root):  # os.walk lists a linked folder but does not descend into it
        base = Path(folder).relative_to(root)
        if base == Path("."):
            dirs[:] = [d for d in dirs if d != ".git"]
        for name in sorted(dirs + files):
            rel = (base / name).as_posix()
            st = (Path(folder) / name).lstat()
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(Path(folder) / name)
                found.append(SourceFile(rel, 0, target if points_outside(rel, target) else None, is_link=True))
            elif stat.S_ISREG(st.st_mode):
                found.append(SourceFile(rel, st.st_size))
    return sorted(found, key=lambda f: f.path)


def python_sources(root: Path, files: Sequence[SourceFile], limit: int = 1024 * 1024) -> dict[str, str]:
    sources = {}
    for f in files:
        if f.path.endswith(".py") and not f.is_link and f.size < limit:
            try:
                sources[f.path] = nofollow.read_text(root, f.path)
            except (FileNotFoundError, nofollow.SymlinkRefused):
                continue
    return sources
