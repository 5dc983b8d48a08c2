"""Which dependency manifest a repository uses, and what to install from it (pure functions)."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass

from shipyard.buildpack.poetry_lock import grouped_requirements, main_requirements
from shipyard.errors import BuildError

# Lock files first: they say exactly what to install. Then what people write by hand.
MANIFESTS = ("uv.lock", "poetry.lock", "Pipfile.lock", "requirements.txt", "Pipfile", "pyproject.toml",
             "setup.py", "setup.cfg")


@dataclass(frozen=True)
class DependencyPlan:
    kind: str  # one of MANIFESTS
    # Requirement lines to install with `uv pip install -r` (converted from Poetry/Pipenv); empty for the others.
    requirements: tuple[str, ...] = ()
    # The project itself is installed (editable): its venv points into this slug and cannot be reused.
    installs_project: bool = False

    @property
    def reusable(self) -> bool:
        return not self.installs_project


def load_toml(text: str, filename: str, hint: str) -> dict:  # type: ignore[type-arg]
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BuildError(f"{filename} is not valid TOML: {exc}", hint=hint) from None


def has_build_system(pyproject: str) -> bool:
    data = load_toml(pyproject, "pyproject.toml", "Fix pyproject.toml and push again.")
    poetry = data.get("tool", {}).get("poetry", {})
    return "build-system" in data and poetry.get("package-mode", True) is not False


def plan_dependencies(files: Mapping[str, str]) -> DependencyPlan:
    pyproject = files.get("pyproject.toml", "")
    if "uv.lock" in files and pyproject:
        return DependencyPlan("uv.lock", installs_project=has_build_system(pyproject))
    if "poetry.lock" in files:
        return DependencyPlan("poetry.lock", requirements_from_poetry_lock(files["poetry.lock"], pyproject),
                              installs_project=bool(pyproject) and has_build_system(pyproject))
    if "Pipfile.lock" in files:
        return DependencyPlan("Pipfile.lock", requirements_from_pipfile_lock(files["Pipfile.lock"]))
    if "requirements.txt" in files:
        editable = re.search(r"^\s*(-e|--editable)\s", files["requirements.txt"], re.MULTILINE)
        return DependencyPlan("requirements.txt", installs_project=bool(editable))
    if "Pipfile" in files:
        return DependencyPlan("Pipfile", requirements_from_pipfile(files["Pipfile"]))
    if pyproject and "[project]" in pyproject:
        return DependencyPlan("pyproject.toml", installs_project=has_build_system(pyproject))
    if "setup.py" in files or "setup.cfg" in files:
        return DependencyPlan("setup.py" if "setup.py" in files else "setup.cfg", installs_project=True)
    raise BuildError(
        "No dependency manifest found (requirements.txt, pyproject.toml, Pipfile, poetry.lock, uv.lock or setup.py).",
        hint="Add a requirements.txt at the root of your repository listing your app's dependencies, e.g. `flask`.")


def locked_wheel_packages(lock: str) -> tuple[str, ...]:
    """uv.lock's packages from an index that have wheels: the ones whose Python fit is told by their wheels
    (a package with only an sdist is built on any Python, so it does not choose one)."""
    data = load_toml(lock, "uv.lock", "Run `uv lock` and push again.")
    return tuple(sorted({p["name"] for p in data.get("package", [])
                         if p.get("wheels") and "registry" in p.get("source", {})}))


def requirements_from_poetry_lock(lock: str, pyproject: str) -> tuple[str, ...]:
    """Poetry's lock as pinned requirements, main group only (uv cannot read poetry.lock itself)."""
    packages = load_toml(lock, "poetry.lock", "Run `poetry lock` and push again.").get("package", [])
    if any("groups" in package for package in packages):  # Poetry 2 wrote each package's groups and markers
        return grouped_requirements(packages)
    if not pyproject.strip():
        raise BuildError("poetry.lock is there but not the pyproject.toml it was made from: which of its packages "
                         "your app needs is said there.",
                         hint="Commit pyproject.toml next to poetry.lock and push again.")
    project = load_toml(pyproject, "pyproject.toml", "Fix pyproject.toml and push again.")
    return main_requirements(packages, project)


def requirements_from_pipfile_lock(lock: str) -> tuple[str, ...]:
    try:
        default = json.loads(lock).get("default", {})
    except ValueError as exc:
        raise BuildError(f"Pipfile.lock is not valid JSON: {exc}", hint="Run `pipenv lock` and push again.")
    lines = []
    for name, entry in sorted(default.items()):
        extras = f"[{','.join(entry['extras'])}]" if entry.get("extras") else ""
        if "git" in entry:
            ref = f"@{entry['ref']}" if entry.get("ref") else ""
            lines.append(f"{name}{extras} @ git+{entry['git']}{ref}")
            continue
        line = f"{name}{extras}{entry.get('version', '')}"
        if entry.get("markers"):
            line += f" ; {entry['markers']}"
        lines.append(line)
    return tuple(lines)


def requirements_from_pipfile(pipfile: str) -> tuple[str, ...]:
    packages = load_toml(pipfile, "Pipfile", "Fix the Pipfile and push again.").get("packages", {})
    lines = []
    for name, spec in packages.items():
        if isinstance(spec, str):
            lines.append(name if spec == "*" else f"{name}{spec}")
        else:
            extras = f"[{','.join(spec['extras'])}]" if spec.get("extras") else ""
            version = spec.get("version", "")
            lines.append(f"{name}{extras}{'' if version == '*' else version}")
    return tuple(lines)
