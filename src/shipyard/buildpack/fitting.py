"""Asking uv which Pythons an app's dependencies install on, from wheels alone (fit.py decides and words it).

uv answers without building or running anything: `uv pip compile --only-binary :all:` per candidate
Python for requirements, `uv sync --frozen --dry-run` for uv.lock (the lock lists each wheel). It runs in
the build's sandbox like the install itself: a requirements file can include any path (`-r /…/token`) and
uv would print what it read.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.buildpack import nofollow
from shipyard.buildpack.advice import Advice
from shipyard.buildpack.dependencies import DependencyPlan, locked_wheel_packages
from shipyard.buildpack.fit import Fit, Verdict, chosen, decisive, verdict
from shipyard.buildpack.python import Interpreter, PythonChoice
from shipyard.buildpack.runner import Runner
from shipyard.buildpack.uvfail import BUILD_FAILED, NO_WHEEL, UvFailure, parse_uv_failure, pins
from shipyard.proc import find_binary

# Rounds of "a release has no wheel for any Python here: leave it out, and ask again about the others".
ROUNDS = 3


async def quiet(line: str) -> None:
    """uv's answers are read, not shown: the build log gets fit.py's one line."""


@dataclass
class Resolver:
    """How to ask uv about one app's dependencies on a given Python."""
    run: Runner
    environ: Mapping[str, str]
    app_dir: Path
    inputs_dir: Path  # the platform's read-only folder for this build: probe files are written there
    source: str = ""  # what `uv pip compile` resolves (a path relative to app_dir, or in inputs_dir)
    no_deps: bool = False  # a lock's pins: all of them are listed, nothing to resolve
    locked_wheels: tuple[str, ...] | None = None  # uv.lock: its packages that have wheels (the rest must build)
    uv: str = field(default_factory=lambda: str(find_binary("uv", "uv")))

    async def uv_run(self, argv: list[str], env: Mapping[str, str] | None = None) -> tuple[int, list[str]]:
        return await self.run([self.uv, *argv], env or self.environ, self.app_dir, quiet)

    async def check(self, python: Interpreter, left_out: frozenset[str]) -> Verdict:
        """left_out: packages with no wheel for any candidate; they cannot choose the Python, so uv resolves
        as if they were not there (an override with a marker that is never true removes a package)."""
        if self.locked_wheels is not None:  # offline by nature: the lock names every wheel
            no_build = [arg for name in self.locked_wheels if name not in left_out
                        for arg in ("--no-build-package", name)]
            # A dry run creates nothing; the environment named is one that does not exist.
            env = {**self.environ, "UV_PROJECT_ENVIRONMENT": str(self.inputs_dir / "fit-venv")}
            code, lines = await self.uv_run(["sync", "--frozen", "--no-default-groups", "--dry-run",
                                             "--no-install-project", "--python", str(python.path), *no_build], env)
        else:
            overrides = []
            if left_out:
                text = "".join(f'{name} ; sys_platform == "never"\n' for name in sorted(left_out))
                overrides = ["--overrides", self.write("fit-overrides.txt", text)]
            code, lines = await self.compile(python, [*overrides, *(["--no-deps"] if self.no_deps else []),
                                                      self.source])
        return verdict(python, None if code == 0 else parse_uv_failure(lines), pins(lines) if code == 0 else {})

    async def compile(self, python: Interpreter, args: list[str]) -> tuple[int, list[str]]:
        """The cache first (`--offline`, ~10 ms): an earlier candidate's run, or the app's last install, has
        usually fetched what this one needs. The package index when the cache lacks something, or when its
        answer may be out of date (a release published since): each online run revalidates every page it
        reads (PyPI's are stale at once) and costs round trips."""
        argv = ["pip", "compile", "--quiet", "--no-header", "--no-annotate", "--python", str(python.path),
                "--only-binary", ":all:", *args]
        code, lines = await self.uv_run([*argv, "--offline"])
        if code == 0 or parse_uv_failure(lines).settled:
            return code, lines
        return await self.uv_run(argv)

    def write(self, name: str, text: str) -> str:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", name)  # from uv's output: never a path
        nofollow.write_new(self.inputs_dir, name, text.encode())
        return str(self.inputs_dir / name)

    async def wheel_pythons(self, package: str, version: str, pythons: Sequence[Interpreter]) -> list[Interpreter]:
        """The Pythons among these that package==version has a wheel for."""
        source = self.write(f"probe-{package}-{version}.txt", f"{package}=={version}\n")
        codes = await asyncio.gather(*(self.compile(p, ["--no-deps", source]) for p in pythons))
        return [p for p, (code, _) in zip(pythons, codes) if code == 0]

    async def first_wheel_release(self, package: str, version: str, python: Interpreter) -> str | None:
        """The oldest release after `version` with a wheel for this Python: the smallest upgrade that fixes it."""
        source = self.write(f"probe-{package}-after-{version}.txt", f"{package}>{version}\n")
        code, lines = await self.compile(python, ["--no-deps", "--resolution", "lowest", source])
        return pins(lines).get(package) if code == 0 else None


def resolver_for(plan: DependencyPlan, files: Mapping[str, str], generated: Path | None, run: Runner,
                 environ: Mapping[str, str], app_dir: Path, inputs_dir: Path) -> tuple[Resolver | None, str]:
    """The resolver for this plan, or None and why uv cannot tell without building (then the newest is used)."""
    resolver = Resolver(run, environ, app_dir, inputs_dir)
    if plan.kind == "uv.lock":
        resolver.locked_wheels = locked_wheel_packages(files["uv.lock"])
    elif generated is not None:
        resolver.source, resolver.no_deps = str(generated), plan.kind in ("poetry.lock", "Pipfile.lock")
    elif plan.kind in ("requirements.txt", "pyproject.toml"):
        resolver.source = plan.kind
    else:
        return None, f"the dependencies of {plan.kind} are only known by running it"
    return resolver, ""


async def fit_python(choice: PythonChoice, resolver: Resolver | None, unchecked: str = "") -> Fit:
    """The newest candidate every dependency installs on from wheels (usually the newest: one uv run)."""
    candidates = list(choice.candidates)
    if resolver is None:
        return chosen([], candidates, choice.allowed, unchecked)
    left_out: dict[str, str] = {}  # name → the release with no wheel for any candidate
    verdicts: list[Verdict] = []
    for _ in range(ROUNDS):
        verdicts = await verdicts_until_fit(resolver, candidates, frozenset(left_out))
        built = [f"{name}=={version}" for name, version in left_out.items()]
        if verdicts[-1].fits:
            return chosen(verdicts, candidates, choice.allowed, built=built)
        if not decisive(verdicts[-1]):  # e.g. a name not on the index: no Python helps, the install says so
            return chosen([], candidates, choice.allowed, verdicts[-1].reason)
        # A release with no wheel for any of these Pythons (an sdist-only one) is built wherever it goes:
        # it cannot choose the Python. Leave it out, and ask again about the others.
        blockers = sorted({(v.failure.package, v.failure.version) for v in verdicts
                           if v.failure and v.failure.kind == NO_WHEEL and v.failure.version})
        wheels = await asyncio.gather(*(resolver.wheel_pythons(n, ver, candidates) for n, ver in blockers))
        sdist_only = {name: version for (name, version), found in zip(blockers, wheels) if not found}
        if not sdist_only:
            break
        left_out |= sdist_only
    return chosen(verdicts, candidates, choice.allowed)


async def verdicts_until_fit(resolver: Resolver, candidates: Sequence[Interpreter],
                             left_out: frozenset[str]) -> list[Verdict]:
    """Newest first, one at a time (each answers from the cache the previous one filled), up to the first that
    fits or that says nothing about Python."""
    found: list[Verdict] = []
    for candidate in candidates:
        found.append(v := await resolver.check(candidate, left_out))
        if v.fits or not decisive(v):
            break
    return found


async def advise(failure: UvFailure, python: Interpreter, available: Sequence[Interpreter],
                 resolver: Resolver) -> Advice:
    """After an install failed on a release with no wheel for this Python: which Pythons here have one for it,
    and the first later release with one for this Python (both asked at once; each a resolution, no build)."""
    if failure.kind not in (BUILD_FAILED, NO_WHEEL) or not failure.version:
        return Advice()
    wheels, first = await asyncio.gather(resolver.wheel_pythons(failure.package, failure.version, available),
                                         resolver.first_wheel_release(failure.package, failure.version, python))
    return Advice(tuple(p.version for p in wheels), first)


async def fit_for_build(choice: PythonChoice, plan: DependencyPlan, files: Mapping[str, str], generated: Path | None,
                        run: Runner, environ: Mapping[str, str], app_dir: Path, inputs_dir: Path) -> Fit:
    resolver, unchecked = resolver_for(plan, files, generated, run, environ, app_dir, inputs_dir)
    return await fit_python(choice, resolver, unchecked)
