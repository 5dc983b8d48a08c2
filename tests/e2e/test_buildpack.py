"""The buildpack through real pushes: each manifest kind, each start-command rule, frameworks, pre-flight checks."""

from __future__ import annotations

import re

import pytest

from .harness import Shipyard, free_port

MANIFESTS = [
    ("uv-app", "uv.lock", "Hello from uv.lock\n"),
    ("poetry-app", "poetry.lock", "Hello from poetry.lock\n"),
    ("pipenv-app", "Pipfile.lock", "Hello from Pipfile.lock\n"),
    ("pep621-app", "pyproject.toml", "Hello from pyproject.toml\n"),
    ("setuptools-app", "setup.py", "Hello from setup.py\n"),
]


@pytest.mark.parametrize("sample,kind,body", MANIFESTS)
def test_each_dependency_manifest_deploys(shipyard: Shipyard, sample: str, kind: str, body: str) -> None:
    shipyard.cli("apps", "create", sample)
    pushed = shipyard.push(shipyard.checkout(sample, sample))
    assert f"remote: -----> Python app detected ({kind})" in pushed.err
    if kind == "Pipfile.lock":
        assert "remote: -----> Using Python 3.12." in pushed.err and "(from Pipfile.lock)" in pushed.err
    assert shipyard.get(sample).text == body


def test_a_poetry_project_that_cannot_be_installed_still_deploys_its_dependencies(shipyard: Shipyard) -> None:
    # A `packages` entry naming a folder that does not exist: Poetry 1.x only warned, and repos rely on it.
    shipyard.cli("apps", "create", "poetrypkg")
    work = shipyard.checkout("poetry-app", "poetrypkg")
    pyproject = (work / "pyproject.toml").read_text().replace(
        "package-mode = false", 'packages = [{ include = "no_such_package" }]')
    (work / "pyproject.toml").write_text(pyproject + '\n[build-system]\nrequires = ["poetry-core"]\n'
                                         'build-backend = "poetry.core.masonry.api"\n')
    shipyard.commit(work, "a packages entry that names nothing")
    pushed = shipyard.push(work)
    assert "Warning: your project itself could not be installed" in pushed.err
    assert "set `package-mode = false` under [tool.poetry]" in pushed.err
    assert shipyard.get("poetrypkg").text == "Hello from poetry.lock\n"


def test_django_collectstatic_and_whitenoise(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "django")
    pushed = shipyard.push(shipyard.checkout("django-static", "django"))
    assert "remote: -----> Using start command from manage.py (Django): gunicorn --bind 127.0.0.1:$PORT mysite.wsgi" \
        in pushed.err
    assert "remote: -----> $ python manage.py collectstatic --noinput" in pushed.err
    page = shipyard.get("django")
    assert page.status_code == 200 and "Hello from Django" in page.text
    css = page.text.split('href="')[1].split('"')[0]
    assert css.startswith("/static/pages/site.") and css.endswith(".css")  # the manifest's hashed name
    static = shipyard.get("django", css)
    assert static.status_code == 200 and "rebeccapurple" in static.text


def test_fastapi_runs_on_gunicorn_with_uvicorn_workers(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "fast")
    pushed = shipyard.push(shipyard.checkout("fastapi-hello", "fast"))
    assert "gunicorn --bind 127.0.0.1:$PORT --worker-class uvicorn_worker.UvicornWorker main:app" in pushed.err
    assert "remote: -----> Adding gunicorn, uvicorn-worker" in pushed.err
    assert shipyard.get("fast").json()["message"] == "Hello from FastAPI"


def test_openshift_s2i_hooks_and_environment(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "s2i")
    pushed = shipyard.push(shipyard.checkout("s2i-app", "s2i"))
    assert "remote: -----> Running .s2i/bin/assemble" in pushed.err
    assert "Shipyard default assemble" in pushed.err
    assert "Using start command from .s2i/bin/run: ./.s2i/bin/run" in pushed.err
    assert shipyard.get("s2i").text == "hello from .s2i/environment; assembled by .s2i/bin/assemble\n"


def test_start_command_rules_app_run_app_module_and_main_py(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "rules")
    work = shipyard.checkout("setuptools-app", "rules")
    shipyard.cli("config", "set", "rules", "GUNICORN_APP_MODULE=hello:app")
    assert "Using start command from GUNICORN_APP_MODULE: gunicorn --bind 127.0.0.1:$PORT hello:app" \
        in shipyard.push(work).err
    shipyard.cli("config", "set", "rules", "APP_RUN=gunicorn --bind 0.0.0.0:${PORT:-8000} wsgi:app")
    (work / "touch.txt").write_text("1")
    shipyard.commit(work, "rebuild")
    assert "Using start command from APP_RUN: gunicorn --bind 0.0.0.0:${PORT:-8000} wsgi:app" in shipyard.push(work).err
    assert shipyard.get("rules").text == "Hello from setup.py\n"

    shipyard.cli("apps", "create", "plain")
    pushed = shipyard.push(shipyard.checkout("main-py", "plain"))
    assert "Using start command from main.py: python main.py" in pushed.err
    assert shipyard.get("plain").text == "Hello from main.py\n"


def test_start_and_build_command_settings(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "render", "--boot-timeout", "30")
    shipyard.cli("apps", "set", "render", "--build-command", 'echo "flag=$BUILD_FLAG secret=$RUNTIME_ONLY"',
                 "--start-command", "gunicorn --bind 0.0.0.0:$PORT app:app")
    shipyard.cli("config", "set", "render", "RUNTIME_ONLY=seen")
    shipyard.cli("config", "set", "render", "--build-time", "BUILD_FLAG=yes")  # accepted, changes nothing
    assert "BUILD_FLAG=yes" in shipyard.cli("config", "render").out
    pushed = shipyard.push(shipyard.checkout("flask-hello", "render"))
    assert 'remote: -----> Running the build command: echo "flag=$BUILD_FLAG secret=$RUNTIME_ONLY"' in pushed.err
    assert re.search(r"^remote:        flag=yes secret=seen\s*$", pushed.err, re.MULTILINE)  # every var, as on Render
    assert "Using start command from start command setting: gunicorn --bind 0.0.0.0:$PORT app:app" in pushed.err
    assert shipyard.get("render").status_code == 200


def test_redeploy_reuses_the_virtualenv(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "reuse")
    work = shipyard.checkout("flask-hello", "reuse")
    assert "Reusing the virtualenv" not in shipyard.push(work).err
    (work / "app.py").write_text((work / "app.py").read_text().replace('VERSION = "1"', 'VERSION = "2"'))
    shipyard.commit(work, "code only")
    redeploy = shipyard.push(work).err
    assert "remote: -----> Reusing the virtualenv of an earlier build" in redeploy
    assert "remote: -----> Copied 1 changed file(s); 1 unchanged, shared with the previous slug" in redeploy
    assert shipyard.get("reuse").text == "Hello from flask-hello v2\n"


def test_python_version_pins(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "py312")
    pushed = shipyard.push(shipyard.checkout("python-312", "py312"))
    assert "remote: -----> Using Python 3.12.1 (from runtime.txt)" in pushed.err
    assert shipyard.get("py312", "/python").text == "3.12.1\n"

    # Newer than any installed (3.13 here): the newest, said in the log.
    shipyard.cli("apps", "create", "py314")
    pushed = shipyard.push(shipyard.checkout("python-314", "py314"))
    assert "Python 3.14 (from .python-version) is not installed here: using Python 3.13" in pushed.err


def test_fixed_port_is_rejected_then_honoured_with_the_setting(shipyard: Shipyard) -> None:
    port = free_port()
    shipyard.cli("apps", "create", "fixed")
    work = shipyard.checkout("fixed-port", "fixed")
    (work / "Procfile").write_text(f"web: gunicorn --bind 0.0.0.0:{port} app:app\n")
    shipyard.commit(work, "port")
    refused = shipyard.push(work, check=False)
    assert refused.code != 0
    assert f"remote: !     The start command listens on port {port}, not on $PORT" in refused.err
    assert f"shipyard apps set <app> --port {port}" in refused.err
    shipyard.cli("apps", "set", "fixed", "--port", str(port))
    shipyard.push(work)
    assert shipyard.get("fixed").status_code == 200
    assert shipyard.get("fixed", "/").text.startswith("Hello from a fixed port")


@pytest.mark.parametrize("sample,message", [
    ("broken-procfile", "Procfile line 2 is not `name: command`: 'this is not a process line'"),
    ("broken-release", "The Procfile's release command starts a server: `gunicorn app:app`."),
    ("broken-no-manifest", "No dependency manifest found (requirements.txt, pyproject.toml, Pipfile, poetry.lock, "
                           "uv.lock or setup.py)."),
])
def test_preflight_failures(shipyard: Shipyard, sample: str, message: str) -> None:
    shipyard.cli("apps", "create", sample)
    result = shipyard.push(shipyard.checkout(sample, sample), check=False)
    assert result.code != 0
    assert f"remote: !     {message}" in result.err


def test_preflight_warnings_do_not_fail(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "sqlite")
    pushed = shipyard.push(shipyard.checkout("flask-sqlite", "sqlite"))
    assert "Warning: app.py uses SQLite (`sqlite:///`): the local disk is wiped on every restart." in pushed.err


def test_symlink_out_of_the_repository_is_refused(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "links")
    work = shipyard.checkout("flask-hello", "links")
    (work / "passwords").symlink_to("/etc/passwd")
    shipyard.commit(work, "a link out")
    result = shipyard.push(work, check=False)
    assert result.code != 0
    assert "remote: !     passwords is a symlink to /etc/passwd, outside the repository." in result.err


def test_builds_are_sandboxed(shipyard: Shipyard) -> None:
    """setup.py runs as an unprivileged user and sees neither the platform's data nor other apps."""
    shipyard.cli("apps", "create", "probe")
    secrets = [shipyard.data_dir / "token", shipyard.data_dir / "shipyard.db", shipyard.data_dir / "slugs" / "django",
               shipyard.data_dir / "repos"]
    shipyard.cli("config", "set", "probe", "--build-time", "PROBE_PATHS=" + ":".join(map(str, secrets)))
    shipyard.push(shipyard.checkout("sandbox-probe", "probe"))
    report = shipyard.get("probe").text
    for path in secrets:
        assert f"{path}: denied (FileNotFoundError)" in report
    build_uid = int(re.search(r"uid=(\d+)", report).group(1))
    base = int(shipyard.env["SHIPYARD_UID_BASE"])
    assert base + 100_000 < build_uid < base + 200_000  # the app's own build uid: never root, never shared
