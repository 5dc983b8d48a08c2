"""Hints that name the real cause: pkg_resources, scripts that cannot run, a full disk (pure rules), and what a
failed build step turns into (the build's runner) and runs with (its environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.buildpack.runner import Runner
from shipyard.buildpack.steps import build_path, pip_defaults, step_env
from shipyard.errors import BuildError, OutOfSpace
from shipyard.proc import find_binary
from shipyard.runtime.diagnose import DEFAULT_HINT, boot_hint, build_hint, disk_full, disk_full_error

GUNICORN_20 = ['  File "/app/venv/lib/python3.13/site-packages/gunicorn/util.py", line 25, in <module>',
               "    import pkg_resources", "ModuleNotFoundError: No module named 'pkg_resources'"]


def test_pkg_resources_names_setuptools_below_81_not_any_package() -> None:
    for hint in (boot_hint(GUNICORN_20), build_hint(GUNICORN_20)):
        assert hint is not None and "add `setuptools<81` to requirements.txt" in hint
        assert "add the package that provides it" not in hint
    assert "UV_BUILD_CONSTRAINT=build-constraints.txt" in boot_hint(GUNICORN_20)  # when a package's build needs it
    # Other missing modules keep the general advice.
    assert "`flask_cors`" in boot_hint(["ModuleNotFoundError: No module named 'flask_cors'"])


@pytest.mark.parametrize("line", [
    "bash: ./run.sh: Permission denied",  # bash -c, exit 126
    "bash: line 2: ./run.sh: Permission denied",  # bash -c with the launch script's line first
    "sh: 1: ./run.sh: Permission denied",  # dash
    "2026-11-29T10:00:00 app[web.1]: bash: ./run.sh: Permission denied",  # with a log prefix
    "./run.sh: Permission denied",  # the build's launcher (exit 127)
])
def test_a_script_without_its_executable_bit(line: str) -> None:
    hint = boot_hint([line])
    assert hint.startswith("command not found: ./run.sh is not executable")
    assert "`git update-index --chmod=+x run.sh`" in hint and "`bash run.sh`" in hint
    assert build_hint([line]) == hint


def test_the_launchers_absolute_path_is_shown_from_the_apps_folder() -> None:
    hint = build_hint(["/var/lib/shipyard/slugs/todo/17-abc/app/.s2i/bin/assemble: Permission denied"])
    assert hint is not None and "`git update-index --chmod=+x .s2i/bin/assemble`" in hint


def test_other_commands_that_do_not_run() -> None:
    assert boot_hint(["bash: gunicorn: command not found"]).startswith("command not found: `gunicorn`. If it comes "
                                                                       "from a Python package")
    assert boot_hint(["sh: 1: uvicorn: not found"]).startswith("command not found: `uvicorn`.")
    missing = boot_hint(["bash: ./start.sh: No such file or directory"])
    assert missing.startswith("command not found: ./start.sh is not among the app's files")
    crlf = "Windows line endings (CRLF)"
    assert crlf in boot_hint(["/usr/bin/env: ‘bash\r’: No such file or directory"])
    assert crlf in boot_hint(["/usr/bin/env: 'python3\\x0d': No such file or directory"])  # as the app log escapes it
    assert crlf in boot_hint(["bash: ./run.sh: /bin/bash^M: bad interpreter: No such file or directory"])
    interpreter = boot_hint(["bash: ./run.sh: /usr/local/bin/python: bad interpreter: No such file or directory"])
    assert interpreter.startswith("./run.sh's first line (`#!/usr/local/bin/python`) names an interpreter")


def test_the_apps_own_permission_errors_are_not_taken_for_a_script() -> None:
    assert boot_hint(["PermissionError: [Errno 13] Permission denied: '/app/data.db'"]) == DEFAULT_HINT
    assert build_hint(["PermissionError: [Errno 13] Permission denied: 'static/x.css'"]) is None


def test_build_hints_never_send_migrations_to_the_release_phase() -> None:
    """A build may migrate on purpose (Render's build.sh): a schema error there is the build's own output."""
    undefined = ['psycopg.errors.UndefinedTable: relation "todo" does not exist']
    assert "release phase" in boot_hint(undefined)
    assert build_hint(undefined) is None
    assert "DATABASE_URL" in (build_hint(["django.db.utils.OperationalError: connection refused"]) or "")
    assert "shipyard config set <app> SECRET_KEY=" in (build_hint(["KeyError: 'SECRET_KEY'"]) or "")
    assert build_hint(["Warming up forever"]) is None


@pytest.mark.parametrize("line", [
    "error: Failed to install: flask-3.1.0: No space left on device (os error 28)",  # uv
    "OSError: [Errno 28] No space left on device: '/slug/app/staticfiles/x.css'",
    "tar: write error: ENOSPC",
    "cp: error writing 'x': No space left on device",
])
def test_a_full_disk_is_seen_in_any_tools_words(line: str) -> None:
    assert disk_full(["Resolved 5 packages", line])


def test_a_full_disk_blames_the_disk_not_the_requirements() -> None:
    message, hint = disk_full_error("Installing requirements.txt", "1.2 MB free of 50.0 GB (0.0 %)")
    assert message == ("The disk is full: Installing requirements.txt stopped with \"No space left on device\": the "
                       "data directory's disk has 1.2 MB free of 50.0 GB (0.0 %).")
    assert "Nothing is wrong with the app or its requirements" in hint and "Fix requirements.txt" not in hint
    assert disk_full_error("collectstatic", None)[0] == ("The disk is full: collectstatic stopped with \"No space "
                                                         "left on device\".")
    assert not disk_full(["ERROR: No matching distribution found for flask==99"])


def test_a_failed_step_is_blamed_on_its_real_cause(tmp_path: Path) -> None:
    run = Runner(disk=tmp_path)
    full = run.failure("Installing requirements.txt", "Could not install requirements.txt: …",
                       ["error: Failed to write: No space left on device (os error 28)"],
                       hint="Fix requirements.txt and push again.")
    assert isinstance(full, OutOfSpace) and full.message.startswith("The disk is full: Installing requirements.txt")
    assert "the data directory's disk has " in full.message and " free of " in full.message
    assert "Fix requirements.txt" not in (full.hint or "")
    known = run.failure("The build command", "The build command failed (exit code 126): …",
                        ["bash: ./build.sh: Permission denied"], hint="Fix it.")
    assert type(known) is BuildError and known.message == "The build command failed (exit code 126): …"
    assert "git update-index --chmod=+x build.sh" in (known.hint or "")
    plain = run.failure("collectstatic", "collectstatic failed (exit code 1): boom", ["boom"], hint="Fix it.")
    assert plain.hint == "Fix it."
    assert "free of" not in (Runner().failure("x", "m", ["No space left on device"]).message)


def test_build_steps_run_in_the_apps_venv_with_its_config_and_uv() -> None:
    venv, home = Path("/data/slugs/todo/1-abc/venv"), Path("/data/slugs/todo/1-abc")
    environ = {"PATH": "/usr/local/bin:/usr/bin:/bin", "UV_CACHE_DIR": "/data/cache/uv/todo",
               "DATABASE_URL": "postgresql://app_todo:pw@localhost:5433/app_todo", "SECRET_KEY": "s",
               "VIRTUAL_ENV": "/elsewhere", "UV_PROJECT_ENVIRONMENT": "/elsewhere",
               "UV_DEFAULT_INDEX": "https://mirror/simple"}
    env = step_env(venv, home, environ)
    uv_dir = str(find_binary("uv", "uv").resolve().parent)
    assert env["PATH"].startswith(f"{venv}/bin:/usr/local/bin:/usr/bin:/bin")
    assert uv_dir in env["PATH"].split(":")
    assert env["VIRTUAL_ENV"] == env["UV_PROJECT_ENVIRONMENT"] == str(venv)  # the contract wins over config vars
    assert env["DATABASE_URL"].startswith("postgresql://") and env["SECRET_KEY"] == "s"
    assert env["UV_CACHE_DIR"] == "/data/cache/uv/todo" and env["HOME"] == str(home)
    assert env["PIP_INDEX_URL"] == "https://mirror/simple"  # pip asks the index uv asks
    assert step_env(venv, home, {**environ, "PIP_INDEX_URL": "https://own/simple"})["PIP_INDEX_URL"] == \
        "https://own/simple"  # unless the app names its own
    assert pip_defaults({}) == {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    assert build_path(venv).count(uv_dir) <= 1


def test_uv_run_of_a_program_the_venv_lacks_names_the_package_to_add() -> None:
    hint = boot_hint(["error: Failed to spawn: `gunicorn`", "  Caused by: No such file or directory (os error 2)"])
    assert hint.startswith("command not found: `uv run gunicorn` found no `gunicorn` in the app's virtualenv.")
    assert "`uv add gunicorn`" in hint
