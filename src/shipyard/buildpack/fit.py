"""Which Python fits an app's dependencies, when it pins none: the decisions and what the build log says (pure).

The newest installed Python on which every dependency resolves to a wheel wins, so old pins
(`greenlet==3.0.1`, `psycopg2-binary==2.9.3`) get a Python they were released for instead of a
compiler error on the newest one. fitting.py asks uv; this module only decides and words it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from shipyard.buildpack.python import Interpreter
from shipyard.buildpack.uvfail import BUILD_FAILED, NO_WHEEL, REQUIRES_PYTHON, UvFailure


@dataclass(frozen=True)
class Removal:
    package: str
    versions: str  # the releases that import the module at start-up
    module: str
    removed_in: Version
    certain: bool  # imported by every app using the package (Django's request module), not only by some


# Checked against the released files: Django 3.2 and 4.0 import `cgi` in django/http/request.py (4.1 no
# longer does); eventlet 0.33 imports `distutils.version` from its core (0.34 no longer does).
REMOVALS = (
    Removal("django", "<4.1", "cgi", Version("3.13"), certain=True),
    Removal("eventlet", "<0.34", "distutils", Version("3.12"), certain=False),
)


@dataclass(frozen=True)
class Verdict:
    """One candidate Python: does everything install from wheels on it, and if not, why (`{pythons}` is
    filled with the Pythons that share the reason when the log groups them)."""
    interpreter: Interpreter
    fits: bool
    reason: str = ""
    failure: UvFailure | None = None  # uv's, when the reason came from uv


@dataclass(frozen=True)
class Fit:
    interpreter: Interpreter
    line: str  # the build log's line, without its "-----> "


def short(version: Version) -> str:
    return f"{version.major}.{version.minor}"


def removals_for(installed: Mapping[str, str], python: Version) -> list[Removal]:
    """The known modules this Python removed that these packages (name → version) import at start-up."""
    found = []
    for removal in REMOVALS:
        version = installed.get(removal.package)
        if version is None or python < removal.removed_in:
            continue
        try:
            if Version(version) in SpecifierSet(removal.versions):
                found.append(removal)
        except InvalidVersion:
            continue
    return found


def removal_reason(removal: Removal, version: str) -> str:
    return f"{removal.package} {version} imports {removal.module}, which is gone from Python {{pythons}}"


def verdict(interpreter: Interpreter, failure: UvFailure | None, installed: Mapping[str, str]) -> Verdict:
    """A candidate's verdict from its uv run: the failure (None when it resolved) or what it would install."""
    if failure is None:
        if removed := removals_for(installed, interpreter.version):
            return Verdict(interpreter, False, removal_reason(removed[0], installed[removed[0].package]))
        return Verdict(interpreter, True)
    if failure.kind == NO_WHEEL:
        return Verdict(interpreter, False, f"{failure.pinned} has no wheel for Python {{pythons}}", failure)
    if failure.kind == REQUIRES_PYTHON:
        subject = failure.pinned if failure.package else "your project"
        return Verdict(interpreter, False, f"{subject} needs Python{failure.detail} (not {{pythons}})", failure)
    if failure.kind == BUILD_FAILED:  # nothing is built here but a path or URL requirement, for its metadata
        return Verdict(interpreter, False, f"{failure.pinned} has to be built to know its dependencies", failure)
    return Verdict(interpreter, False, "uv could not resolve them; the install below says why", failure)


def decisive(v: Verdict) -> bool:
    """Whether a candidate's verdict says something about Python (then try the older ones) or about the
    requirements (a typo, a missing release, a path to build: every Python would fail alike, so stop asking)."""
    return v.fits or v.failure is None or v.failure.kind in (NO_WHEEL, REQUIRES_PYTHON)


def join_versions(versions: Sequence[str]) -> str:
    """`3.12 or 3.11`; three or more minor versions in a row (newest first) as a range: `3.7–3.13`."""
    runs: list[list[str]] = []
    for v in versions:
        if runs and follows(runs[-1][-1], v):
            runs[-1].append(v)
        else:
            runs.append([v])
    parts: list[str] = []
    for run in runs:
        parts += [f"{run[-1]}–{run[0]}"] if len(run) > 2 else run
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} or {parts[-1]}"


def follows(newer: str, older: str) -> bool:
    a, b = newer.split("."), older.split(".")
    return len(a) == len(b) == 2 and a[0] == b[0] and a[1].isdigit() and b[1].isdigit() and int(a[1]) == int(b[1]) + 1


def grouped_reasons(rejected: Sequence[Verdict]) -> str:
    """`a has no wheel for Python 3.13; b has no wheel for Python 3.12 or 3.11`: one clause per reason, in the
    order the Pythons were rejected (newest first)."""
    order: dict[str, list[str]] = {}
    for v in rejected:
        order.setdefault(v.reason, []).append(short(v.interpreter.version))
    return "; ".join(reason.replace("{pythons}", join_versions(pythons)) for reason, pythons in order.items())


def pin_advice(version: Version) -> str:
    return f"Pin it with a .python-version file (echo {short(version)} > .python-version)"


def chosen(verdicts: Sequence[Verdict], candidates: Sequence[Interpreter], allowed: str, unchecked: str = "",
           built: Sequence[str] = ()) -> Fit:
    """The newest fitting candidate and the build log's line saying why. `allowed`: "No Python pin" or the range
    pinned; `unchecked`: why uv could not tell (the newest is used, as without this check); `built`: releases
    with no wheel for any candidate, left out of the choice."""
    newest = candidates[0]
    fitting = [v for v in verdicts if v.fits]
    tail = f" {', '.join(built)} {'has' if len(built) == 1 else 'have'} no wheel for any Python here: built " \
           "from source." if built else ""
    if unchecked:
        return Fit(newest, f"{allowed}; using Python {newest.version}, the newest installed (not checked against "
                           f"your dependencies: {unchecked})")
    if not fitting:
        return Fit(newest, f"{allowed}; no Python here has wheels for all your dependencies "
                           f"({grouped_reasons(verdicts)}) → trying the newest, Python {newest.version}.{tail}")
    best = max(fitting, key=lambda v: v.interpreter.version)
    if best.interpreter == newest:
        return Fit(newest, f"{allowed}; using Python {newest.version}, the newest installed (your "
                           f"{'other ' if built else ''}dependencies have wheels for it).{tail}")
    rejected = sorted((v for v in verdicts if not v.fits and v.interpreter.version > best.interpreter.version),
                      key=lambda v: v.interpreter.version, reverse=True)
    return Fit(best.interpreter, f"{allowed}; {grouped_reasons(rejected)} → using Python {best.interpreter.version}. "
                                 f"{pin_advice(best.interpreter.version)}.{tail}")
