"""The install step: a virtualenv made with uv from the app's dependency manifest, reused when unchanged."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shipyard.buildpack import nofollow
from shipyard.buildpack.advice import Advice, explain, removal_fix, removal_problem
from shipyard.buildpack.dependencies import DependencyPlan
from shipyard.buildpack.fitting import Resolver, advise, quiet
from shipyard.buildpack.python import Interpreter
from shipyard.buildpack.runner import Log, Runner
from shipyard.buildpack.uvfail import parse_uv_failure, summarize_uv_failure
from shipyard.errors import BuildError
from shipyard.proc import find_binary
from shipyard.runtime.diagnose import disk_full

COMPLETE = ".shipyard-complete"
# Packages a generated start command needs, by the executable or module that proves they are there.
SERVER_PACKAGES = {"gunicorn": "gunicorn", "uvicorn_worker": "uvicorn-worker", "uvicorn": "uvicorn"}


@dataclass(frozen=True)
class Venv:
    path: Path
    reused: bool
    python: Interpreter


def uv_env(uv_cache_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    """A clean environment for uv: the platform's own variables stay out of builds."""
    clean = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(uv_cache_dir.parent), "UV_CACHE_DIR": str(uv_cache_dir),
             "NO_COLOR": "1", "UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never", "LANG": "C.UTF-8",
             # Instances see their venv read-only, so bytecode they compiled would be lost at every start:
             # compiled once here, an app boots 2.5-3.5x faster (see the facts on waking idle apps).
             "UV_COMPILE_BYTECODE": "1"}
    for name in ("SSL_CERT_FILE", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL"):
        if name in os.environ:
            clean[name] = os.environ[name]
    clean.update({k: v for k, v in env.items() if k not in clean})  # build-time config vars
    if env.get("PIP_INDEX_URL"):
        clean["UV_INDEX_URL"] = env["PIP_INDEX_URL"]
    return clean


def venv_digest(plan: DependencyPlan, manifest_texts: Mapping[str, str], python: Interpreter,
                servers: tuple[str, ...], env: Mapping[str, str], fitted: bool = False) -> str:
    """What a reusable venv depends on: the manifests, the interpreter, the added servers, the index, and whether
    the Python was fitted to the dependencies (such a venv proves the fit chose it: a redeploy reuses it unasked)."""
    h = hashlib.sha256()
    for part in ("bytecode", *(["fitted"] if fitted else []), plan.kind, str(python.version), str(python.path),
                 ",".join(servers),
                 env.get("PIP_INDEX_URL", ""),
                 env.get("PIP_UPGRADE", ""), *plan.requirements,
                 *(f"{k}\0{v}" for k, v in sorted(manifest_texts.items()))):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:24]


def install_argv(uv: str, plan: DependencyPlan, python: Path, generated: Path | None,
                 env: Mapping[str, str]) -> list[str]:
    upgrade = ["--upgrade"] if env.get("PIP_UPGRADE") else []
    if plan.kind == "uv.lock":
        # Not --no-dev: `[tool.uv] default-groups` may name other groups (lint, docs), which --no-dev still installs.
        return [uv, "sync", "--frozen", "--no-default-groups", "--python", str(python)]
    if plan.kind == "requirements.txt":
        return [uv, "pip", "install", *upgrade, "--python", str(python), "-r", "requirements.txt"]
    if generated is not None:
        return [uv, "pip", "install", *upgrade, "--python", str(python), "-r", str(generated)]
    if plan.kind == "pyproject.toml" and not plan.installs_project:
        return [uv, "pip", "install", *upgrade, "--python", str(python), "-r", "pyproject.toml"]
    return [uv, "pip", "install", *upgrade, "--python", str(python), "-e", "."]


async def create_venv(venv: Path, interpreter: Interpreter, environ: Mapping[str, str], log: Log, run: Runner,
                      seed: bool = False) -> None:
    uv = str(find_binary("uv", "uv"))
    argv = [uv, "venv", "--quiet", *(["--seed"] if seed else []), "--python", str(interpreter.path), str(venv)]
    code, lines = await run(argv, environ, venv.parent, log)
    if code != 0:
        raise run.failure("Creating the virtualenv", f"Could not create a virtualenv with Python "
                          f"{interpreter.version}: {summarize_uv_failure(lines)}", lines,
                          hint="Pin another Python version (runtime.txt).")


def generated_requirements(plan: DependencyPlan, inputs_dir: Path) -> Path | None:
    """A converted lock's requirements, written in inputs_dir: the platform's folder for this build (root's,
    read-only in the sandbox), never a folder the build can write, where a planted link would take root's write
    elsewhere."""
    if not plan.requirements:
        return None
    generated = inputs_dir / f"requirements-from-{plan.kind.replace('.', '-')}.txt"
    nofollow.write_new(inputs_dir, generated.name, ("\n".join(plan.requirements) + "\n").encode())
    return generated


async def install_dependencies(venv: Path, app_dir: Path, plan: DependencyPlan, environ: Mapping[str, str],
                               log: Log, run: Runner, inputs_dir: Path, python: Interpreter,
                               available: Sequence[Interpreter]) -> None:
    uv = str(find_binary("uv", "uv"))
    generated = generated_requirements(plan, inputs_dir)
    env = dict(environ)
    if plan.kind == "uv.lock":
        env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    code, lines = await run(install_argv(uv, plan, venv / "bin" / "python", generated, env), env, app_dir, log)
    if code != 0:
        raise await install_failure(plan, lines, run, environ, app_dir, inputs_dir, python, available)
    if generated is not None and plan.installs_project:
        argv = [uv, "pip", "install", "--python", str(venv / "bin" / "python"), "--no-deps", "-e", "."]
        code, lines = await run(argv, env, app_dir, log)
        if code != 0 and plan.kind == "poetry.lock" and not run.out_of_memory() and not disk_full(lines):
            # As `poetry install` did until Poetry 2: the dependencies are in, the project itself is not
            # (often a `packages` entry naming a folder that does not exist); its code runs from the app folder.
            await log(f"       Warning: your project itself could not be installed ({summarize_uv_failure(lines)}); "
                      "its dependencies are, and its code runs from the app's folder.")
            await log("         Fix: set `package-mode = false` under [tool.poetry] (an app, not a library), or fix "
                      "its `packages` in pyproject.toml.")
        elif code != 0:
            raise run.failure("Installing your project", f"Could not install your project: "
                              f"{summarize_uv_failure(lines)}", lines,
                              hint="Fix pyproject.toml, or set `package-mode = false` under [tool.poetry].")


async def install_failure(plan: DependencyPlan, lines: list[str], run: Runner, environ: Mapping[str, str],
                          app_dir: Path, inputs_dir: Path, python: Interpreter,
                          available: Sequence[Interpreter]) -> BuildError:
    """The error naming the package, the Python and the fix. Which Pythons have a wheel for what failed, and
    which release has one for this Python, is asked only now: a build that works pays nothing for it."""
    failure = parse_uv_failure(lines)
    try:
        advice = await advise(failure, python, available, Resolver(run, environ, app_dir, inputs_dir))
    except (OSError, BuildError):  # the probes only sharpen the advice: the failure above is what counts
        advice = Advice()
    message, hint = explain(failure, python.version, plan.kind, [i.version for i in available], advice)
    error = run.failure(f"Installing {plan.kind}", message, lines, hint=hint)
    if failure.python_related and type(error) is BuildError and error.message == message:
        # The Python and the package are the cause (a build tripping on a Python 2 module, say), not a module
        # to add to requirements.txt: the memory limit or a full disk still come first (run.failure).
        error.hint = hint
    return error


def lib_pythons(venv: Path) -> list[str]:
    """The venv's lib/pythonX.Y folders, looked up without following links: the venv was written by the build."""
    try:
        with nofollow.opened_dir(venv, "lib") as fd:
            return [name for name in os.listdir(fd) if name.startswith("python")]
    except (FileNotFoundError, NotADirectoryError, nofollow.SymlinkRefused):
        return []


def dist_infos(venv: Path) -> Iterator[str]:
    for p in lib_pythons(venv):
        try:
            with nofollow.opened_dir(venv, f"lib/{p}/site-packages") as fd:
                yield from os.listdir(fd)
        except (FileNotFoundError, NotADirectoryError, nofollow.SymlinkRefused):
            continue


def installed_packages(venv: Path) -> dict[str, str]:
    """name → version of what the venv has, from its `.dist-info` folders' names."""
    found = {}
    for entry in dist_infos(venv):
        if match := re.fullmatch(r"(.+)-([^-]+)\.dist-info", entry):
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


async def check_removed_modules(venv: Path, python: Interpreter, log: Log) -> None:
    """A package that imports a module this Python removed (Django < 4.1 and `cgi` on 3.13) fails at start with
    a ModuleNotFoundError that names neither Python nor the package: say so at build time."""
    problem = removal_problem(installed_packages(venv), python.version)
    if problem is None:
        return
    removal, message = problem
    if removal.certain:
        raise BuildError(message, hint=removal_fix(removal))
    await log(f"       Warning: {message}")
    await log(f"         Fix: {removal_fix(removal)}")


def missing_servers(venv: Path, servers: tuple[str, ...]) -> list[str]:
    pythons = lib_pythons(venv)
    missing = []
    for module in servers:
        if module == "gunicorn" and nofollow.is_file(venv, "bin/gunicorn"):
            continue
        if module != "gunicorn" and any(nofollow.is_dir(venv, f"lib/{p}/site-packages/{module}") for p in pythons):
            continue
        missing.append(SERVER_PACKAGES[module])
    return missing


async def add_servers(venv: Path, app_dir: Path, servers: tuple[str, ...], environ: Mapping[str, str],
                      log: Log, run: Runner) -> None:
    missing = missing_servers(venv, servers)
    if not missing:
        return
    await log(f"-----> Adding {', '.join(missing)} (your start command needs it and your dependencies don't list it)")
    uv = str(find_binary("uv", "uv"))
    python = str(venv / "bin" / "python")
    # What is installed stays as the lock or pins made it: the added server gets a version that fits them
    # (the newest uvicorn-worker would otherwise upgrade a pinned uvicorn).

    code, frozen = await run([uv, "pip", "freeze", "--python", python], environ, app_dir, quiet)
    pins = [line.strip() for line in frozen if code == 0 and "==" in line and not line.startswith(("-", "#"))]
    code, lines = await run([uv, "pip", "install", "--python", python, *missing, *pins], environ, app_dir, log)
    if code != 0 and pins:  # no release of it fits what is installed: let it upgrade what it needs, and say so
        await log(f"       No {', '.join(missing)} fits your pinned versions; letting it upgrade what it needs")
        code, lines = await run([uv, "pip", "install", "--python", python, *missing], environ, app_dir, log)
    if code != 0:
        raise run.failure(f"Installing {', '.join(missing)}",
                          f"Could not install {', '.join(missing)}: {summarize_uv_failure(lines)}", lines)


def reusable_venv(venvs_dir: Path, digest: str, frozen_uid: int | None) -> Path | None:
    """The venv an earlier successful build made for this digest: a real folder, frozen (owned by frozen_uid,
    which no build can chown to) and marked complete by root. Anything else there (a build that died half-way,
    or one a rejected build made up for a digest it guessed) is removed."""
    venv = venvs_dir / digest
    st = nofollow.lstat(venvs_dir, digest)
    marker = nofollow.lstat(venvs_dir, f"{digest}/{COMPLETE}")
    if (st is not None and stat.S_ISDIR(st.st_mode) and marker is not None and stat.S_ISREG(marker.st_mode)
            and (frozen_uid is None or (st.st_uid == frozen_uid and marker.st_uid == 0))):
        return venv
    if st is not None:
        with nofollow.opened_dir(venvs_dir) as fd:
            nofollow.remove(fd, digest)
    return None


def mark_complete(venv: Path) -> None:
    """Written by root once the venv is frozen; a link the build planted there is replaced, never followed."""
    nofollow.write_new(venv, COMPLETE, b"")


# Older packages (gunicorn < 22, many Flask/Django add-ons) import pkg_resources, which only setuptools < 81
# provides; uv's virtualenvs have no setuptools, where Heroku's and Render's have long had one.
PKG_RESOURCES = "setuptools<81"
# Run in the build's sandbox as its uid (the venv is the build's): does any installed module import
# pkg_resources while the venv cannot?
NEEDS_PKG_RESOURCES = r"""
import importlib.util, pathlib, re, sys
if importlib.util.find_spec("pkg_resources"):
    sys.exit(1)
use = re.compile(rb"^(import pkg_resources|from pkg_resources import)", re.M)  # at import time, not in a function
for site in map(pathlib.Path, sys.path):
    if site.name != "site-packages":
        continue
    for path in site.rglob("*.py"):
        if path.parts[len(site.parts)] in ("setuptools", "pip", "_distutils_hack", "pkg_resources"):
            continue
        try:
            if use.search(path.read_bytes()):
                print(path.relative_to(site).parts[0])
                sys.exit(0)
        except OSError:
            pass
sys.exit(1)
"""


async def provide_pkg_resources(venv: Path, app_dir: Path, environ: Mapping[str, str], log: Log,
                                run: Runner) -> None:
    code, lines = await run([str(venv / "bin" / "python"), "-c", NEEDS_PKG_RESOURCES], environ, app_dir, quiet)
    if code != 0:
        return
    user = lines[-1].strip() if lines else "a dependency"
    await log(f"-----> Adding {PKG_RESOURCES}: {user} imports pkg_resources, which your virtualenv lacks "
              "(list setuptools in your dependencies to choose its version)")
    uv = str(find_binary("uv", "uv"))
    code, lines = await run([uv, "pip", "install", "--python", str(venv / "bin" / "python"), PKG_RESOURCES],
                            environ, app_dir, log)
    if code != 0:
        raise run.failure(f"Installing {PKG_RESOURCES}", f"Could not install {PKG_RESOURCES}: "
                          f"{summarize_uv_failure(lines)}", lines)
