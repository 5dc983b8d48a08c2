"""Build steps after the install: OpenShift's .s2i hooks, Django's collectstatic, the app's build command."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from shipyard.buildpack import nofollow
from shipyard.buildpack.runner import Log, Runner
from shipyard.buildpack.uvfail import shorten
from shipyard.proc import find_binary

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def parse_s2i_environment(text: str) -> dict[str, str]:
    """`.s2i/environment`: KEY=VALUE lines, as OpenShift's builder reads them."""
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = value.strip().strip('"').strip("'")
    return env


def step_env(venv: Path, home: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of a build step that runs the app's own commands (collectstatic, .s2i/bin/assemble, the
    build command, and every script they call), as on Heroku and Render.

    environ: uv's environment for this build (install.uv_env: the app's config vars, add-on ones included, and
    the app's uv cache). On top of it the platform's contract, which no config var changes: the app's venv
    first on PATH and uv after the system's programs, VIRTUAL_ENV and UV_PROJECT_ENVIRONMENT naming the venv, so
    `pip install`, `uv pip install` and `uv sync` all install into it (not into the system, which is read-only,
    or a `.venv` of the app's folder that no instance would use).
    """
    return {**pip_defaults(environ), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", **environ,
            "PATH": build_path(venv), "VIRTUAL_ENV": str(venv), "UV_PROJECT_ENVIRONMENT": str(venv),
            "HOME": str(home)}


def build_path(venv: Path) -> str:
    """The venv's programs first; uv last: the sandbox binds uv's file alone, so its folder holds nothing else."""
    uv_dir = str(find_binary("uv", "uv").resolve().parent)
    tail = "" if uv_dir in SYSTEM_PATH.split(":") else f":{uv_dir}"
    return f"{venv / 'bin'}:{SYSTEM_PATH}{tail}"


def pip_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """pip (in the venvs of apps with a build command) uses the package index uv uses, unless the app says
    otherwise (its own PIP_INDEX_URL comes later and wins); and it keeps quiet about its own updates."""
    pip = {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if index := environ.get("UV_DEFAULT_INDEX") or environ.get("UV_INDEX_URL"):
        pip["PIP_INDEX_URL"] = index
    if extra := environ.get("UV_EXTRA_INDEX_URL"):
        pip["PIP_EXTRA_INDEX_URL"] = extra
    return pip


def default_assemble_script(folder: Path, install_argv: list[str]) -> Path:
    """A script .s2i/bin/assemble can call to run Shipyard's own install (OpenShift's `$STI_SCRIPTS_PATH/assemble`).

    folder: in the platform's own folder for this build (root's, read-only in the sandbox), so no build can
    plant a link there for root to write through, or change the script.
    """
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # the platform writes it, the sandboxed build user runs it
    text = ("#!/bin/sh\nset -e\necho '---> Installing application dependencies (Shipyard default assemble)'\n"
            f"exec {shlex.join(install_argv)}\n")
    nofollow.write_new(folder, "assemble", text.encode(), mode=0o755)
    return folder / "assemble"


async def run_step(name: str, command: list[str], cwd: Path, env: Mapping[str, str], log: Log, run: Runner,
                   hint: str) -> None:
    code, lines = await run(command, env, cwd, log)
    if code != 0:
        last = next((line.strip() for line in reversed(lines) if line.strip()), "no output")
        raise run.failure(name, f"{name} failed (exit code {code}): {shorten(last)}", lines, hint)


def django_static_root_missing(settings_source: str | None) -> bool:
    return settings_source is not None and not re.search(r"^\s*STATIC_ROOT\s*=", settings_source, re.MULTILINE)


# Django's refusal when the settings (as the build sees them) have no STATIC_ROOT: often set only for
# production behind a platform's own variable (`if not DEBUG:` with DEBUG from `RENDER`/`DYNO`).
NO_STATIC_ROOT = "without having set the STATIC_ROOT setting"


async def collectstatic(app_dir: Path, env: Mapping[str, str], log: Log, run: Runner) -> None:
    """Django's collectstatic. Without a STATIC_ROOT there is nothing to collect into: Heroku would fail the
    build; the app may well run without (DEBUG serves static files, or WhiteNoise finds them), so the step is
    skipped with the fix instead."""
    await log("-----> $ python manage.py collectstatic --noinput")
    code, lines = await run(["python", "manage.py", "collectstatic", "--noinput"], env, app_dir, log)
    if code == 0:
        return
    if any(NO_STATIC_ROOT in line for line in lines):
        await log("       Warning: collectstatic was skipped: your settings have no STATIC_ROOT (here, with this "
                  "config), so static files are not collected.")
        await log("         Fix: set `STATIC_ROOT = BASE_DIR / \"staticfiles\"` unconditionally in settings.py "
                  "(and serve it with WhiteNoise), or set the config var your settings read to turn it on.")
        return
    last = next((line.strip() for line in reversed(lines) if line.strip()), "no output")
    raise run.failure("collectstatic", f"collectstatic failed (exit code {code}): {shorten(last)}", lines,
                      "Fix the error above (often a setting read from a config var that is not set), "
                      "or skip the step with `shipyard config set <app> DISABLE_COLLECTSTATIC=1`.")
