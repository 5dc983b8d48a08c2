"""The buildpack: detect → pre-flight checks → install (uv, cached) → framework steps → manifest.

Each step is a small function with a typed result; the build log reads like Heroku's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.buildpack import nofollow, preflight
from shipyard.buildpack.dependencies import MANIFESTS, DependencyPlan, plan_dependencies
from shipyard.buildpack.detect import (ASGI_WORKER, FILES_OF_INTEREST, StartCommand, django_settings_module,
                                   django_wsgi_path, parse_procfile, resolve_start_command)
from shipyard.buildpack.install import (Venv, add_servers, check_removed_modules, create_venv, provide_pkg_resources,
                                    generated_requirements, install_argv, install_dependencies, mark_complete,
                                    reusable_venv, uv_env, venv_digest)
from shipyard.buildpack.compat import PlatformEnv, platform_env
from shipyard.buildpack.manifest import Manifest
from shipyard.buildpack.ownership import freeze, hand_over_slug, prepare_cache, prepare_venvs_dir, stop_build_processes
from shipyard.buildpack.fitting import fit_for_build
from shipyard.buildpack.python import (MINIMUM, Interpreter, PythonChoice, choose_python, install_roots,
                                   newest_per_minor, requested_python)
from shipyard.buildpack.runner import Log, Runner
from shipyard.buildpack.sandbox import Sandbox, build_sandbox
from shipyard.buildpack.source import copy_source
from shipyard.buildpack.steps import (collectstatic, default_assemble_script, django_static_root_missing,
                                  parse_s2i_environment, run_step, step_env)
from shipyard.errors import BuildError
from shipyard.proc import find_binary
from shipyard.runtime.cgroups import Cgroup, CgroupTree
from shipyard.runtime.limits import BUILD


@dataclass(frozen=True)
class Slug:
    path: Path  # path/"app" (source), path/"venv", path/"manifest.json"
    manifest: Manifest


@dataclass(frozen=True)
class BuildRequest:
    source_dir: Path
    slug_dir: Path  # final place of the slug: venvs are not relocatable
    venvs_dir: Path  # the app's reusable virtualenvs, one per dependency digest
    uv_cache_dir: Path  # the app's own (uv hardlinks from it unsandboxed, copies in the sandbox)
    interpreters: Sequence[Interpreter]
    env: Mapping[str, str] = field(default_factory=dict)  # the app's config vars (add-on ones included) and knobs
    start_command: str = ""  # the app's start command setting
    build_command: str = ""  # the app's build command setting
    fixed_port: int | None = None
    build_uid: int | None = None  # run build steps sandboxed as this uid (None: unsandboxed, e.g. unit tests)
    previous_slug: Path | None = None  # the app's last slug: unchanged files are hardlinked from it
    # A sandboxed build's slug and new venv are frozen to this uid (the app's instances' uid; root when None).
    runtime_uid: int | None = None
    # Parent of the platform's own folder for this build's inputs (root's; the system's tmp when None).
    scratch_dir: Path | None = None
    shared_files: tuple[Path, ...] = ()  # the platform's files every build may read (PGSSLROOTCERT's CA)
    limits: CgroupTree | None = None  # where the build's cgroup is made (runtime.limits.BUILD)


@dataclass(frozen=True)
class Detection:
    files: dict[str, str]
    env: dict[str, str]  # request env over repo_env
    repo_env: dict[str, str]  # what the repository asks for: its platform's variables, then .s2i/environment
    platform: PlatformEnv  # the variables of the platform the repository was written for, if any
    python: PythonChoice
    python_source: str
    dependencies: DependencyPlan
    start: StartCommand
    process_types: dict[str, str]
    django_settings: tuple[str, str | None] | None  # (path, source) of the settings module

    @property
    def servers(self) -> tuple[str, ...]:
        """The servers the web command runs, installed when the app's dependencies lack them."""
        command = self.start.command
        found = [name for name, pattern in (("gunicorn", r"\bgunicorn\b"), ("uvicorn_worker", re.escape(ASGI_WORKER)),
                                            ("uvicorn", r"(^|[\s;&|/])uvicorn\s")) if re.search(pattern, command)]
        return tuple(found)


def read_files(source_dir: Path) -> tuple[dict[str, str], list[str]]:
    """The files detection reads, and those skipped because they are (or lie below) a symlink: a pushed
    repository's link (`.python-version` → the token) must never be read as root."""
    files: dict[str, str] = {}
    links: list[str] = []

    def read(name: str) -> None:
        try:
            files[name] = nofollow.read_text(source_dir, name)
        except (FileNotFoundError, ValueError):
            pass
        except nofollow.SymlinkRefused:
            links.append(name)

    for name in FILES_OF_INTEREST:
        read(name)
    if "manage.py" in files and (wsgi := django_wsgi_path(files["manage.py"])):
        for extra in (wsgi, settings_path(files["manage.py"])):
            if extra:
                read(extra)
    return files, links


def settings_path(manage_py: str) -> str | None:
    module = django_settings_module(manage_py)
    return module.replace(".", "/") + ".py" if module else None


def detect(files: Mapping[str, str], request: BuildRequest) -> Detection:
    compat = platform_env(files)
    repo_env = {**compat.env, **parse_s2i_environment(files.get(".s2i/environment", ""))}
    env = {**repo_env, **request.env}
    wanted = requested_python(files)
    python = choose_python(wanted, request.interpreters)
    dependencies = plan_dependencies(files)
    start = resolve_start_command(files, env, request.start_command)
    types = parse_procfile(files["Procfile"]) if "Procfile" in files else {}
    types["web"] = start.command
    django = None
    if "manage.py" in files and (path := settings_path(files["manage.py"])):
        django = (path, files.get(path))
    return Detection(dict(files), env, repo_env, compat, python, wanted.source, dependencies, start, types,
                     django)


def preflight_findings(detection: Detection, tree: Sequence[preflight.SourceFile], sources: Mapping[str, str],
                       fixed_port: int | None) -> list[preflight.Finding]:
    findings = preflight.check_files(tree)
    findings += preflight.check_release_command(detection.process_types)
    findings += preflight.check_port(detection.start.command, fixed_port)
    findings += preflight.check_gunicorn_config(detection.start.command, sources, detection.env, fixed_port)
    if detection.start.rule in preflight.EXPLICIT_RULES:
        findings += preflight.check_debug_server(detection.start.command, sources, detection.env)
    findings += preflight.check_sqlite(sources)
    if detection.django_settings:
        findings += preflight.check_django_debug(detection.django_settings[1], detection.django_settings[0])
    return findings


async def report_findings(findings: Sequence[preflight.Finding], log: Log) -> None:
    for f in findings:
        await log(f"       {'!' if f.level == 'error' else 'Warning:'} {f.message}")
        await log(f"         Fix: {f.fix}")
    errors = [f for f in findings if f.level == "error"]
    if errors:
        others = "" if len(errors) == 1 else f" (and {len(errors) - 1} more problem(s) above)"
        raise BuildError(errors[0].message + others, hint=errors[0].fix)


async def venv_python(request: BuildRequest, detection: Detection, log: Log, run: Runner, inputs: Path,
                      digest: Callable[[Interpreter], str] | None,
                      frozen_uid: int | None) -> tuple[Interpreter, Path | None]:
    """The Python to build with, and the venv an earlier build made for it and these dependencies (None: make
    one; digest None: the venv is not shared). Without a pin, the newest Python the dependencies fit (fitting.py)
    — unless a venv fitted to these same dependencies exists: it proves an earlier build chose its Python, so a
    code-only redeploy reuses it without asking uv again (and keeps its Python when a newer one is installed)."""
    choice = detection.python
    for python in (choice.candidates or (choice.interpreter,)) if digest else ():
        if existing := reusable_venv(request.venvs_dir, digest(python), frozen_uid):
            if choice.candidates:
                await log(f"-----> {choice.allowed}; using Python {python.version}, as the earlier build of these "
                          "dependencies did")
            return python, existing
    if not choice.candidates:
        return choice.interpreter, None
    fit = await fit_for_build(choice, detection.dependencies, detection.files,
                              generated_requirements(detection.dependencies, inputs), run,
                              uv_env(request.uv_cache_dir, detection.env), request.slug_dir / "app", inputs)
    await log(f"-----> {fit.line}")
    return fit.interpreter, None


async def build_venv(request: BuildRequest, detection: Detection, log: Log, run: Runner, inputs: Path,
                     frozen_uid: int | None) -> Venv:
    environ = uv_env(request.uv_cache_dir, detection.env)
    app_dir = request.slug_dir / "app"
    assemble = ".s2i/bin/assemble" in detection.files
    manifests = {k: v for k, v in detection.files.items() if k in MANIFESTS}

    def digest(python: Interpreter) -> str:
        return venv_digest(detection.dependencies, manifests, python, detection.servers, detection.env,
                           fitted=bool(detection.python.candidates))
    # A build command, like .s2i/bin/assemble, may install into the venv (Render's build.sh runs `pip install`):
    # it gets a venv of its own, with pip, since a shared one that a live release runs must never change.
    installs = assemble or bool(request.build_command)
    reusable = detection.dependencies.reusable and not installs
    python, existing = await venv_python(request, detection, log, run, inputs, digest if reusable else None,
                                         frozen_uid)
    if existing is not None:
        await log("-----> Reusing the virtualenv of an earlier build (same dependencies and Python)")
        nofollow.symlink_new(request.slug_dir, "venv", str(existing))
        return Venv(existing, reused=True, python=python)
    venv = request.venvs_dir / digest(python) if reusable else request.slug_dir / "venv"
    venv.parent.mkdir(parents=True, exist_ok=True)
    if request.build_command and detection.dependencies.reusable:
        await log("       A fresh virtualenv, with pip: the build command may install into it")
    await create_venv(venv, python, environ, log, run, seed=installs)
    if assemble:
        await log("-----> Running .s2i/bin/assemble")
        default = default_assemble_script(inputs / "s2i",
                                          install_argv(str(find_binary("uv", "uv")), detection.dependencies,
                                                       venv / "bin" / "python", None, detection.env))
        env = {**step_env(venv, request.slug_dir, environ), "STI_SCRIPTS_PATH": str(default.parent)}
        await run_step(".s2i/bin/assemble", [str(app_dir / ".s2i/bin/assemble")], app_dir, env, log, run,
                       hint="Fix .s2i/bin/assemble; it can call $STI_SCRIPTS_PATH/assemble for the default install.")
    else:
        await log(f"-----> Installing dependencies from {detection.dependencies.kind} with uv")
        await install_dependencies(venv, app_dir, detection.dependencies, environ, log, run, inputs, python,
                                   newest_per_minor(i for i in request.interpreters if i.version >= MINIMUM))
    await check_removed_modules(venv, python, log)
    await add_servers(venv, app_dir, detection.servers, environ, log, run)
    await provide_pkg_resources(venv, app_dir, environ, log, run)
    return Venv(venv, reused=False, python=python)  # marked complete and linked from the slug once frozen (settle())


async def framework_steps(request: BuildRequest, detection: Detection, venv: Path, log: Log, run: Runner) -> None:
    app_dir = request.slug_dir / "app"
    env = step_env(venv, request.slug_dir, uv_env(request.uv_cache_dir, detection.env))
    if detection.django_settings and nofollow.is_file(venv, "bin/django-admin"):
        path, source = detection.django_settings
        if detection.env.get("DISABLE_COLLECTSTATIC"):
            await log("-----> Skipping collectstatic (DISABLE_COLLECTSTATIC is set)")
        else:
            if django_static_root_missing(source):
                await log(f"       Warning: {path} has no STATIC_ROOT, so collectstatic has nowhere to put files.")
                await log("         Fix: add `STATIC_ROOT = BASE_DIR / \"staticfiles\"` and serve it with WhiteNoise.")
            await collectstatic(app_dir, env, log, run)
    if request.build_command:
        await log(f"-----> Running the build command: {request.build_command}")
        await run_step("The build command", ["/bin/bash", "-c", request.build_command], app_dir, env, log, run,
                       hint="Fix it, or change it with `shipyard apps set <app> --build-command ...`.")
    # The app's own modules as bytecode too (instances cannot keep what they compile). Files that do
    # not compile (Python 2 leftovers, templates named .py) are not the build's concern: quiet, no failure.
    await run(["python", "-m", "compileall", "-qq", "."], env, app_dir, log)


async def inspect_source(request: BuildRequest, log: Log) -> Detection:
    """Detect and pre-flight: what the source is, how it will run, and what looks wrong (fails early)."""
    files, links = read_files(request.source_dir)
    detection = detect(files, request)
    tree = preflight.scan_tree(request.source_dir)
    await log(f"-----> Python app detected ({detection.dependencies.kind})")
    for name in links:
        await log(f"       Note: {name} is a symlink (or lies below one); Shipyard reads no file through a link, "
                  "so it was ignored.")
    if not detection.python.candidates:  # else chosen to fit the dependencies, when they are known (build_venv)
        await log(f"-----> Using Python {detection.python.interpreter.version}"
                  f"{'' if detection.python_source == 'default' else f' (from {detection.python_source})'}")
    if detection.python.note:
        await log(f"       {detection.python.note}")
    await log(f"-----> Using start command from {detection.start.rule}: {detection.start.command}")
    if detection.platform.env:
        names = " ".join(f"{k}={v}" for k, v in detection.platform.env.items())
        await log(f"-----> Written for {detection.platform.platform}: setting {names} as that platform does "
                  "(a config var of the same name wins)")
    await log("-----> Pre-flight checks")
    await report_findings(preflight_findings(detection, tree, preflight.python_sources(request.source_dir, tree),
                                             request.fixed_port), log)
    return detection


async def build_slug(request: BuildRequest, detection: Detection, log: Log) -> Slug:
    """The slug for an inspected source: its files, its virtualenv, the framework's build steps."""
    started = time.monotonic()
    request.slug_dir.parent.mkdir(parents=True, exist_ok=True)
    inputs = inputs_folder(request.scratch_dir)
    run = Runner(None)
    cgroup: Cgroup | None = None
    try:
        frozen_uid = (request.runtime_uid or 0) if request.build_uid is not None and os.geteuid() == 0 else None
        copied = copy_source(request.source_dir, request.slug_dir / "app",
                             request.previous_slug / "app" if request.previous_slug else None, trusted_uid=frozen_uid)
        await log(f"-----> Copied {copied.changed} changed file(s); {copied.linked} unchanged, shared with the "
                  "previous slug")
        sandbox = sandbox_for(request, detection, inputs)
        if sandbox is not None and request.limits is not None:
            cgroup = await asyncio.to_thread(request.limits.create, f"build.{request.slug_dir.name}", BUILD)
        run = Runner(sandbox, cgroup, disk=request.slug_dir.parent)
        venv = await build_venv(request, detection, log, run, inputs, frozen_uid if run.sandbox else None)
        await framework_steps(request, detection, venv.path, log, run)
        settle(request, venv, run, frozen_uid)
        manifest = Manifest(process_types=detection.process_types, start_rule=detection.start.rule,
                            python=str(venv.python.version),
                            requirements_digest=venv.path.name, framework=framework(detection),
                            env=detection.repo_env)
        nofollow.write_new(request.slug_dir, "manifest.json", manifest.to_json().encode())
    except BaseException:
        if run.sandbox is not None and run.ran:
            with contextlib.suppress(BuildError):
                stop_build_processes(run.sandbox.uid)
        shutil.rmtree(request.slug_dir, ignore_errors=True)  # fd-based: follows no link the build left
        raise
    finally:
        shutil.rmtree(inputs, ignore_errors=True)
        if cgroup is not None:  # nothing of the build outlives it
            await asyncio.to_thread(cgroup.kill)
            await asyncio.to_thread(cgroup.remove)
    await log(f"-----> Build succeeded ({time.monotonic() - started:.1f} s)")
    return Slug(request.slug_dir, manifest)


def inputs_folder(scratch_dir: Path | None) -> Path:
    """The platform's own folder for what it writes for a build (generated requirements, the default assemble
    script): root's, read-only in the sandbox, so no build can plant a link in it or change what is there."""
    if scratch_dir is not None:
        scratch_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="build-", dir=scratch_dir))
    folder.chmod(0o755)
    return folder


def settle(request: BuildRequest, venv: Venv, run: Runner, frozen_uid: int | None) -> None:
    """After the last build step: no build process left, the slug and new venv frozen, then the platform's own
    writes into them (through no link: none can be planted any more, and each write replaces what is there)."""
    shared = not venv.reused and venv.path.parent == request.venvs_dir  # else the slug's own venv, or reused
    if run.sandbox is not None and run.ran:  # a code-only redeploy runs no step: no process to look for
        stop_build_processes(run.sandbox.uid)
    for name in ("app", *(() if venv.reused or shared else ("venv",))):
        if not nofollow.is_dir(request.slug_dir, name):
            raise BuildError(f"The build replaced the slug's {name} folder with something else (a link?).",
                             hint="Build steps may change files inside the app's folder, not replace the folder.")
    if run.sandbox is not None and frozen_uid is not None:
        freeze(request.slug_dir, frozen_uid, frozen_uid)
        if shared:
            freeze(venv.path, frozen_uid, frozen_uid)
    if shared:
        mark_complete(venv.path)
    if venv.reused or shared:
        nofollow.symlink_new(request.slug_dir, "venv", str(venv.path))


def sandbox_for(request: BuildRequest, detection: Detection, inputs: Path) -> Sandbox | None:
    if request.build_uid is None:
        return None
    shared = [f for f in request.shared_files if f.is_file()]
    others = install_roots(i for i in request.interpreters
                           if i.version >= MINIMUM and i != detection.python.interpreter)
    sandbox = build_sandbox(request.build_uid, detection.python.interpreter.path, [inputs, *shared, *others],
                            [request.slug_dir, request.venvs_dir, request.uv_cache_dir])
    if sandbox is not None:
        hand_over_slug(request.slug_dir, sandbox.uid, sandbox.gid)
        prepare_venvs_dir(request.venvs_dir, sandbox.gid)
        prepare_cache(request.uv_cache_dir, sandbox.uid)
    return sandbox


def framework(detection: Detection) -> str | None:
    if detection.django_settings:
        return "django"
    if detection.start.kind == "asgi":
        return "asgi"
    return "wsgi" if detection.start.kind else None
