"""Which Python an app gets: the version it asks for, among the interpreters this machine has."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from shipyard.errors import BuildError

# uv creates virtualenvs for these and newer; Python 2 has been end-of-life since 2020.
MINIMUM = Version("3.6")


@dataclass(frozen=True)
class Interpreter:
    version: Version
    path: Path


@dataclass(frozen=True)
class PythonRequest:
    spec: str  # "3.11", "3.11.7", ">=3.9,<3.13" or "" (no pin)
    source: str  # ".python-version", "runtime.txt", "Pipfile.lock", "pyproject.toml" or "default"


@dataclass(frozen=True)
class PythonChoice:
    interpreter: Interpreter  # the newest allowed, until the dependencies are fitted (fit.py)
    note: str | None  # said in the build log when the choice differs from the exact request
    # No exact pin: the Pythons allowed (newest first), among which the build picks the newest that the
    # dependencies install on; empty when the app pins one (or only one is allowed).
    candidates: tuple[Interpreter, ...] = ()
    allowed: str = ""  # "No Python pin", or the range asked for, as the build log words it


def requested_python(files: Mapping[str, str]) -> PythonRequest:
    """The first pin found, in the order the seeds' platforms read them."""
    if text := files.get(".python-version"):
        for line in text.splitlines():
            if line.strip() and not line.strip().startswith("#"):
                return PythonRequest(line.strip().removeprefix("python-").removeprefix("cpython-"), ".python-version")
    if text := files.get("runtime.txt"):
        return PythonRequest(text.strip().removeprefix("python-"), "runtime.txt")
    if text := files.get("Pipfile.lock"):
        try:
            requires = json.loads(text).get("_meta", {}).get("requires", {})
        except ValueError:
            requires = {}
        if version := requires.get("python_full_version") or requires.get("python_version"):
            return PythonRequest(str(version), "Pipfile.lock")
    if text := files.get("pyproject.toml"):
        match = re.search(r'^\s*requires-python\s*=\s*["\']([^"\']+)["\']', text, re.MULTILINE)
        if match:
            return PythonRequest(match.group(1).strip(), "pyproject.toml")
    return PythonRequest("", "default")


def choose_python(request: PythonRequest, available: Iterable[Interpreter]) -> PythonChoice:
    candidates = sorted((i for i in available if i.version >= MINIMUM), key=lambda i: i.version, reverse=True)
    listing = ", ".join(str(i.version) for i in candidates) or "none"
    if not candidates:
        raise BuildError("No Python 3 interpreter was found on this machine.", hint="Install python3 on the server.")
    if not request.spec:
        return fitted_among(candidates, "No Python pin")
    if re.fullmatch(r"\d+(\.\d+){0,2}", request.spec):
        wanted = Version(request.spec)
        exact = [i for i in candidates if i.version == wanted]
        if exact:
            return PythonChoice(exact[0], None)
        parts = len(wanted.release)
        same = [i for i in candidates if i.version.release[:min(parts, 2)] == wanted.release[:min(parts, 2)]]
        if same:
            note = None if parts < 3 else (f"Python {wanted} is not installed here; using {same[0].version} "
                                          f"(the newest {wanted.major}.{wanted.minor}).")
            return PythonChoice(same[0], note)
        newest = max(candidates, key=lambda i: i.version)
        if newest.version.major == wanted.major and newest.version.release[:2] < wanted.release[:2]:
            # A pin newer than this machine has usually means "the newest" (a template kept current, like
            # Heroku's getting-started app): the newest here, said loudly, rather than no deploy at all.
            return PythonChoice(newest, f"Python {request.spec} (from {request.source}) is not installed here: "
                                        f"using Python {newest.version}, the newest installed. If the app needs "
                                        f"{request.spec}, install it on the server (pyenv install {request.spec}).")
    else:
        try:
            spec = SpecifierSet(request.spec)
        except InvalidSpecifier:
            raise BuildError(f"{request.source} asks for Python '{request.spec}', which is not a version.",
                             hint="Write a version such as 3.12 there.") from None
        matching = [i for i in candidates if spec.contains(i.version, prereleases=True)]
        if matching:  # a range is no pin: the dependencies choose within it
            return fitted_among(matching, f"{request.source} allows Python {request.spec}")
    raise BuildError(
        f"Python {request.spec} (from {request.source}) is not available on this Shipyard; available: {listing}.",
        hint=f"Change {request.source} to one of the available versions, or install Python {request.spec} "
             "on the server.")


def fitted_among(candidates: list[Interpreter], allowed: str) -> PythonChoice:
    fits = tuple(newest_per_minor(candidates))
    return PythonChoice(candidates[0], None, fits if len(fits) > 1 else (), allowed)


def newest_per_minor(interpreters: Iterable[Interpreter]) -> list[Interpreter]:
    """Wheels are built per minor version, so the newest patch of each (pyenv's 3.11.7 over the system's
    3.11.2) is the one to ask about; newest first."""
    newest: dict[tuple[int, int], Interpreter] = {}
    for interpreter in sorted(interpreters, key=lambda i: i.version, reverse=True):
        newest.setdefault((interpreter.version.major, interpreter.version.minor), interpreter)
    return list(newest.values())


def install_roots(interpreters: Iterable[Interpreter]) -> list[Path]:
    """Where each interpreter lives outside the system's read-only /usr (pyenv's versions): a build's sandbox
    shows them all, since it asks uv about each one (fitting.py)."""
    roots = []
    for interpreter in interpreters:
        root = interpreter.path.resolve().parent.parent
        if not root.is_relative_to("/usr") and root not in roots:
            roots.append(root)
    return roots


def discover_interpreters(pyenv_root: Path | None = None) -> list[Interpreter]:
    """pyenv's versions and the system's python3.X, each with its exact version."""
    root = pyenv_root or Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found: dict[Version, Interpreter] = {}
    for folder in sorted((root / "versions").glob("*")):
        python = folder / "bin" / "python"
        try:
            version = Version(folder.name)
        except InvalidVersion:
            continue
        if python.exists() and not version.is_prerelease:
            found.setdefault(version, Interpreter(version, python))
    for prefix in (Path("/usr/local/bin"), Path("/usr/bin")):
        for python in sorted(prefix.glob("python3.[0-9]*")):
            if not re.fullmatch(r"python3\.\d+", python.name):
                continue
            version = probe_version(python)
            if version and version not in found:
                found[version] = Interpreter(version, python)
    return sorted(found.values(), key=lambda i: i.version, reverse=True)


def probe_version(python: Path) -> Version | None:
    try:
        out = subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        return Version(out)
    except (OSError, subprocess.SubprocessError, InvalidVersion):
        return None
