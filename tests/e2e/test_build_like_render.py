"""Builds behave as on Heroku and Render, and failures name their real cause (issue 12), with real pushes.

- Render's Django build.sh (pip install, collectstatic, migrate against the PostgreSQL add-on) deploys on the
  first push, with nothing but the build command and the add-on set: the repo has a render.yaml, so its
  settings get Render's RENDER (DEBUG off, STATIC_ROOT set) and RENDER_EXTERNAL_HOSTNAME (ALLOWED_HOSTS);
- without build.sh, nothing runs `migrate`: the 500 at start is explained by Django's unapplied migrations,
  and the release command the hint gives deploys it;
- `uv run gunicorn …` as the start command runs in the app's venv as built, without syncing it;
- build scripts find pip and uv on PATH, installing into the app's venv, and see every config var, but nothing
  of the platform's;
- an old gunicorn needing pkg_resources deploys (setuptools<81 is added); a run.sh without its executable bit, 
  Flask's debugger as the start command: each fails with the fix, and the fix deploys;
- a build that fills the disk is told the disk is full, with the free space, not to fix its requirements.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Shipyard
from .test_faults_disk import fill, platform_on_small_disk


def test_renders_build_sh_migrates_the_addons_database_on_the_first_push(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "render")
    shipyard.cli("addons", "create", "render", "postgres")
    shipyard.cli("apps", "set", "render", "--build-command", "./build.sh")
    work = shipyard.checkout("render-build-sh", "render")
    pushed = shipyard.push(work, check=False)
    assert pushed.code == 0, pushed.err
    err = pushed.err
    assert "remote: -----> Running the build command: ./build.sh" in err
    assert re.search(r"^remote: +Requirement already satisfied: django", err, re.MULTILINE | re.IGNORECASE), err
    assert "externally-managed-environment" not in err
    assert re.search(r"^remote: +Applying notes\.0001_initial\.\.\. OK", err, re.MULTILINE), err
    page = shipyard.get("render")
    assert page.status_code == 200 and "<li>written by migrate in build.sh</li>" in page.text
    css = page.text.split('href="')[1].split('"')[0]
    assert css.startswith("/static/notes/site.") and "seagreen" in shipyard.get("render", css).text

    # The next push runs build.sh again: nothing to migrate, the rows stay.
    (work / "notes" / "views.py").write_text((work / "notes" / "views.py").read_text() + "\n# v2\n")
    shipyard.commit(work, "v2")
    again = shipyard.push(work).err
    assert re.search(r"^remote: +No migrations to apply\.", again, re.MULTILINE), again
    assert shipyard.get("render").text.count("<li>") == 1


def test_a_django_app_nothing_migrates_is_told_to_add_a_release_command(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "unmigrated")
    shipyard.cli("addons", "create", "unmigrated", "postgres")
    work = shipyard.checkout("render-build-sh", "unmigrated")
    failed = shipyard.push(work, check=False)
    assert failed.code != 0
    assert "answered 500 to GET /" in failed.err
    assert "The database lacks Django migrations (…, " in failed.err
    assert "notes.0001_initial): nothing ran `migrate`." in failed.err
    assert 'shipyard apps set unmigrated --release-command "python manage.py migrate --noinput"' in failed.err

    shipyard.cli("apps", "set", "unmigrated", "--release-command", "python manage.py migrate --noinput")
    (work / "notes" / "views.py").write_text((work / "notes" / "views.py").read_text() + "\n# again\n")
    shipyard.commit(work, "again, with the release command")
    fixed = shipyard.push(work).err
    assert re.search(r"^remote: +Applying notes\.0001_initial\.\.\. OK", fixed, re.MULTILINE), fixed
    assert shipyard.get("unmigrated").status_code == 200


def test_uv_run_as_the_start_command_runs_the_built_venv(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "uvrun")
    shipyard.cli("apps", "set", "uvrun", "--build-command", "uv sync --frozen")
    pushed = shipyard.push(shipyard.checkout("uv-run", "uvrun"), check=False)
    assert pushed.code == 0, pushed.err
    page = shipyard.get("uvrun").text
    assert page.startswith(f"prefix={shipyard.data_dir / 'slugs' / 'uvrun'}"), page
    assert page.endswith(" host=uvrun.localhost render=None\n")  # no render.yaml: not told it runs on Render


def test_build_scripts_get_pip_uv_and_the_config_but_not_the_platform(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "tools")
    shipyard.cli("config", "set", "tools", "GREETING=hi from config", "SHIPYARD_LOOKALIKE=mine")
    (script := shipyard.root / "install.sh").write_text(
        "#!/usr/bin/env bash\nset -e\n"
        'echo "TOOLS pip=$(command -v pip) uv=$(command -v uv) venv=$VIRTUAL_ENV"\n'
        "uv pip install --quiet six\n"
        "pip install --quiet idna\n"
        'python -c "import idna, six, sys; print(\'TOOLS prefix=\' + sys.prefix)"\n'
        'echo "TOOLS greeting=$GREETING"\n'
        'echo "TOOLS platform vars: $(env | grep -c \'^SHIPYARD_\' || true)"\n'
        'touch "$TMPDIR/scratch" && echo "TOOLS tmp writable"\n')
    work = shipyard.checkout("flask-hello", "tools")
    (work / "install.sh").write_text(script.read_text())
    (work / "install.sh").chmod(0o755)
    shipyard.commit(work, "an install script")
    shipyard.cli("apps", "set", "tools", "--build-command", "./install.sh",
                 "--start-command", "gunicorn --bind 0.0.0.0:$PORT app:app")
    err = shipyard.push(work).err
    found = re.search(r"TOOLS pip=(\S+) uv=(\S+) venv=(\S+)", err)
    assert found, err
    pip, uv, venv = found.groups()
    assert pip == f"{venv}/bin/pip" and uv.endswith("/uv") and not uv.startswith(venv)
    assert venv.startswith(str(shipyard.data_dir / "slugs" / "tools"))
    assert f"TOOLS prefix={venv}" in err
    assert "TOOLS greeting=hi from config" in err
    assert "TOOLS platform vars: 1" in err  # the app's own SHIPYARD_LOOKALIKE, none of the platform's
    assert "TOOLS tmp writable" in err
    assert "remote:        A fresh virtualenv, with pip: the build command may install into it" in err
    assert shipyard.get("tools").status_code == 200


def refused(shipyard: Shipyard, sample: str, app: str, *options: str) -> tuple[Path, str]:
    """A new app's first push of a broken sample: the working copy, and what the push said."""
    shipyard.cli("apps", "create", app, *options)
    work = shipyard.checkout(sample, app)
    pushed = shipyard.push(work, check=False)
    assert pushed.code != 0, pushed.err
    return work, pushed.err


def fixed(shipyard: Shipyard, work: Path, app: str, message: str) -> str:
    """Commit the fix, push it (it deploys), and the app's answer."""
    shipyard.commit(work, message)
    shipyard.push(work)
    return shipyard.get(app).text


def test_an_old_gunicorn_gets_pkg_resources_as_on_heroku(shipyard: Shipyard) -> None:
    # gunicorn 20 imports pkg_resources; uv's virtualenvs have no setuptools: the builder adds setuptools<81
    # (the hint for when it cannot is tested in tests/unit/test_hints.py).
    shipyard.cli("apps", "create", "oldgunicorn")
    pushed = shipyard.push(shipyard.checkout("needs-pkg-resources", "oldgunicorn"))
    assert ("-----> Adding setuptools<81: gunicorn imports pkg_resources, which your virtualenv lacks"
            in pushed.err), pushed.err
    assert shipyard.get("oldgunicorn").text == "served by gunicorn 20.1.0\n"


def test_a_run_sh_without_its_executable_bit(shipyard: Shipyard) -> None:
    work, err = refused(shipyard, "run-sh-not-executable", "runsh", "--boot-timeout", "30")
    assert "exited with code 126 before listening on $PORT" in err
    assert "command not found: ./run.sh is not executable" in err
    assert "`git update-index --chmod=+x run.sh`" in err
    assert "must listen on the port in $PORT" not in err  # not the generic advice
    shipyard.git(work, "update-index", "--chmod=+x", "run.sh")  # the fix the hint gives
    (work / "run.sh").chmod(0o755)  # and the working copy's, as git checks out the change
    assert fixed(shipyard, work, "runsh", "run.sh is executable") == "started by run.sh\n"


def test_a_fixed_port_in_gunicorn_conf_py_still_listens_on_port(shipyard: Shipyard) -> None:
    # DigitalOcean's samples bind 8080 in gunicorn's config file: GUNICORN_CMD_ARGS outranks the file.
    shipyard.cli("apps", "create", "gconf")
    pushed = shipyard.push(shipyard.checkout("gunicorn-conf-port", "gconf"))
    assert ('gunicorn.conf.py sets `bind = "0.0.0.0:8000"` (port 8000): Shipyard makes gunicorn listen on $PORT '
            "instead") in pushed.err
    assert shipyard.get("gconf").text == "configured by gunicorn.conf.py\n"


def test_flasks_debugger_as_the_start_command_fails_pre_flight(shipyard: Shipyard) -> None:
    work, err = refused(shipyard, "flask-debug-server", "debugger")
    assert ("remote: !     The start command `python app.py` runs app.py, which serves the app with Werkzeug's "
            "debugger (debug=True)") in err
    assert "`web: gunicorn --bind 0.0.0.0:$PORT app:app`" in err
    (work / "Procfile").write_text("web: gunicorn --bind 0.0.0.0:$PORT app:app\n")
    (work / "requirements.txt").write_text("flask>=3\ngunicorn\n")
    assert fixed(shipyard, work, "debugger", "gunicorn") == "Hello from Flask's development server\n"
    assert shipyard.get("debugger", "/console").status_code == 404


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipyard]:
    with platform_on_small_disk(tmp_path_factory.mktemp("build-disk")) as platform:
        yield platform


def test_a_build_that_fills_the_disk_is_told_so(small_disk: Shipyard) -> None:
    shipyard = small_disk
    shipyard.cli("apps", "create", "filler")
    work = shipyard.checkout("build-fills-disk", "filler")
    # Room for the push's estimate (the source and 200 MB), not for what the package's build writes.
    ballast = shipyard.data_dir / "ballast"
    fill(ballast, leave=260 * 1024 * 1024)
    try:
        refused = shipyard.push(work, check=False)
    finally:
        ballast.unlink()
    assert refused.code != 0
    found = re.search(r'remote: !     The disk is full: Installing requirements.txt stopped with "No space left on '
                      r"device\": the data directory's disk has [\d.]+ (?:KB|MB|bytes) free of 512\.0 MB", refused.err)
    assert found, refused.err
    assert "Nothing is wrong with the app or its requirements" in refused.err
    assert "Fix requirements.txt" not in refused.err
    assert not any(p.name != "venvs" for p in Path(shipyard.data_dir / "slugs" / "filler").glob("*"))
