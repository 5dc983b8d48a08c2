"""What a failed install means for the user: the package, the Python, and the fixes (pure functions).

A compiler error from an old pin on a new Python is not a broken requirements.txt: the message names
the release that has wheels for this Python, or the Python that has wheels for this release.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from shipyard.buildpack.fit import Removal, join_versions, removals_for, short
from shipyard.buildpack.uvfail import BUILD_FAILED, NO_VERSION, NO_WHEEL, NOT_FOUND, REQUIRES_PYTHON, UvFailure

# Packages that stopped at Python 2 (or were abandoned) and what replaced them.
SUCCESSORS = {"mysql-python": "mysqlclient", "pycrypto": "pycryptodome", "psycopg2": "psycopg2-binary",
              "python-memcached": "pymemcache", "m2crypto": "cryptography"}
FULL_OUTPUT = "The full output of uv is above."


@dataclass(frozen=True)
class Advice:
    """What the probes after a failure found out (fitting.py)."""
    wheel_pythons: tuple[Version, ...] = ()  # the Pythons here with a wheel for the release that failed
    first_release: str | None = None  # the oldest later release with a wheel for the build's Python


def versions(available: Sequence[Version]) -> str:
    ordered = sorted(available)
    return f"{ordered[0]}–{ordered[-1]}" if len(ordered) > 1 else str(ordered[0]) if ordered else "none"


def pin_fix(python: Version) -> str:
    return f"pin Python {short(python)}: `echo {short(python)} > .python-version`"


def explain(failure: UvFailure, python: Version, manifest: str, available: Sequence[Version],
            advice: Advice = Advice()) -> tuple[str, str]:
    """(message, hint) of a BuildError for an install that failed with this uv failure on this Python."""
    name = failure.package
    if failure.kind in (BUILD_FAILED, NO_WHEEL) and failure.version:
        return wheel_failure(failure, python, manifest, available, advice)
    if failure.kind == BUILD_FAILED:
        return (f"{name} (a path or URL requirement) failed to build on Python {python}: {failure.detail}",
                f"Fix its build, or pin another Python with a .python-version file. {FULL_OUTPUT}")
    if failure.kind == REQUIRES_PYTHON:
        return python_requirement(failure, python, manifest, available)
    # No Python fixes these: the requirement itself is wrong, in uv's words.
    message = f"Could not install {manifest}: {failure.detail}"
    if failure.kind == NOT_FOUND:
        return message, f"{name} is not on the package index: check its name in {manifest} and push again."
    if failure.kind == NO_VERSION:
        return message, (f"{name} has no release {failure.version}: change it in {manifest} to one that exists "
                         f"(https://pypi.org/project/{name}/#history) and push again.")
    return message, f"Fix {manifest} and push again. {FULL_OUTPUT}"


def wheel_failure(failure: UvFailure, python: Version, manifest: str, available: Sequence[Version],
                  advice: Advice) -> tuple[str, str]:
    name, mm = failure.package, short(python)
    why = "building it from source failed" + (f" ({failure.detail})" if failure.detail else "")
    if failure.kind == NO_WHEEL:
        why = "it was not allowed to build from source"
    if failure.python2_only:
        why += "; it was written for Python 2"
    message = f"{failure.pinned} does not install on Python {python}: it has no wheel for Python {mm}, and {why}."
    fixes = []
    if advice.first_release:
        fixes.append(f"upgrade it in {manifest} to {name}=={advice.first_release} (the first release with a wheel "
                     f"for Python {mm}) or newer")
    others = sorted((v for v in advice.wheel_pythons if short(v) != mm), reverse=True)
    if others:
        fixes.append(f"{pin_fix(others[0])} ({failure.pinned} has wheels for Python "
                     f"{join_versions([short(v) for v in others])} here)")
    if not fixes:
        successor = f"; {SUCCESSORS[name]} is its maintained successor" if name in SUCCESSORS else ""
        return message, (f"Replace it in {manifest}: no later release of {name} has a wheel for Python {mm}, and no "
                         f"Python on this Shipyard ({versions(available)}) has one for {failure.pinned}"
                         f"{successor}. {FULL_OUTPUT}")
    return message, f"Fix: {'; or '.join(fixes)}. {FULL_OUTPUT}"


def python_requirement(failure: UvFailure, python: Version, manifest: str,
                       available: Sequence[Version]) -> tuple[str, str]:
    try:
        fitting = [v for v in sorted(available, reverse=True) if v in SpecifierSet(failure.detail)]
    except InvalidSpecifier:
        fitting = []
    subject = failure.pinned if failure.package else "Your project (requires-python)"
    message = f"{subject} requires Python{failure.detail}; this build uses Python {python}."
    pin = (f"{pin_fix(fitting[0])} (this Shipyard has {join_versions([str(v) for v in fitting])})" if fitting
           else f"this Shipyard has no such Python ({versions(available)})")
    change = f"change {failure.pinned} in {manifest} to a release that supports Python {short(python)}" \
        if failure.package else "widen requires-python in pyproject.toml"
    return message, f"Fix: {pin}; or {change}. {FULL_OUTPUT}"


def removal_problem(installed: dict[str, str], python: Version) -> tuple[Removal, str] | None:
    """The first known stdlib module this Python removed that an installed package imports at start-up."""
    found = removals_for(installed, python)
    return (found[0], removal_message(found[0], installed[found[0].package], python)) if found else None


def removal_message(removal: Removal, version: str, python: Version) -> str:
    return (f"{removal.package} {version} imports the {removal.module} module, which Python {python} no longer has "
            f"(removed in {short(removal.removed_in)}): the app would fail to start.")


def removal_fix(removal: Removal) -> str:
    lowest = removal.versions.lstrip("<=")
    older = Version(f"{removal.removed_in.major}.{removal.removed_in.minor - 1}")
    return (f"Upgrade {removal.package} to {lowest} or newer, or {pin_fix(older)}.")

