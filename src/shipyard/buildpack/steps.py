"""Build steps after the install: OpenShift's .s2i hooks, Django's collectstatic, the app's build command."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from shipyard.buildpack import nofollow
from shipyard.buildpack.install import shorten
from shipyard.buildpack.runner import Log, Runner
from shipyard.errors import BuildError
from shipyard.runtime.limits import BUILD

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


def step_env(venv: Path, home: Path, env: Mapping[str, str]) -> dict[str, str]:
    return {"PATH": f"{venv / 'bin'}:{SYSTEM_PATH}", "VIRTUAL_ENV": str(venv), "HOME": str(home),
            "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", **env}


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
    if code != 0 and run.out_of_memory():
        raise BuildError(f"{name} ran out of memory: a build may use {BUILD.memory_mb} MB and was stopped there.",
                         hint="Install fewer or lighter packages in the build, or move the heavy work to the "
                              "release command or a worker.")
    if code != 0:
        last = next((line.strip() for line in reversed(lines) if line.strip()), "no output")
        raise BuildError(f"{name} failed (exit code {code}): {shorten(last)}", hint=hint)


def django_static_root_missing(settings_source: str | None) -> bool:
    return settings_source is not None and not re.search(r"^\s*STATIC_ROOT\s*=", settings_source, re.MULTILINE)


async def collectstatic(app_dir: Path, env: Mapping[str, str], log: Log, run: Runner) -> None:
    await log("-----> $ python manage.py collectstatic --noinput")
    await run_step("collectstatic", ["python", "manage.py", "collectstatic", "--noinput"], app_dir, env, log, run,
                   hint="Fix the error above (often a setting read from a config var that is not build-time), "
                        "or skip the step with `shipyard config set <app> DISABLE_COLLECTSTATIC=1`.")
