"""Pure decisions of the buildpack, compared as values."""

from pathlib import Path

import pytest
from packaging.version import Version

from shipyard.buildpack.dependencies import (DependencyPlan, plan_dependencies, requirements_from_pipfile,
                                         requirements_from_pipfile_lock, requirements_from_poetry_lock)
from shipyard.buildpack.detect import StartCommand, django_wsgi_path, resolve_start_command
from shipyard.buildpack.install import install_argv
from shipyard.buildpack.preflight import Finding, SourceFile, check_django_debug, check_files, check_port, check_sqlite
from shipyard.buildpack.python import Interpreter, PythonRequest, choose_python, requested_python
from shipyard.buildpack.steps import django_static_root_missing, parse_s2i_environment
from shipyard.errors import BuildError

PYTHONS = [Interpreter(Version(v), Path(f"/py/{v}/bin/python")) for v in ("3.13.0", "3.12.1", "3.11.7", "3.6.15")]


@pytest.mark.parametrize("files,expected", [
    ({".python-version": "3.12\n", "runtime.txt": "python-3.11.7"}, PythonRequest("3.12", ".python-version")),
    ({"runtime.txt": "python-3.11.7\n"}, PythonRequest("3.11.7", "runtime.txt")),
    ({"Pipfile.lock": '{"_meta": {"requires": {"python_version": "3.12"}}}'}, PythonRequest("3.12", "Pipfile.lock")),
    ({"pyproject.toml": '[project]\nrequires-python = ">=3.10,<3.13"\n'},
     PythonRequest(">=3.10,<3.13", "pyproject.toml")),
    ({}, PythonRequest("", "default")),
])
def test_requested_python(files, expected):
    assert requested_python(files) == expected


def test_choose_python():
    assert choose_python(PythonRequest("", "default"), PYTHONS).interpreter.version == Version("3.13.0")
    assert choose_python(PythonRequest("3.12", "x"), PYTHONS).interpreter.version == Version("3.12.1")
    assert choose_python(PythonRequest(">=3.10,<3.13", "x"), PYTHONS).interpreter.version == Version("3.12.1")
    close = choose_python(PythonRequest("3.11.9", "runtime.txt"), PYTHONS)
    assert close.interpreter.version == Version("3.11.7") and "3.11.9 is not installed" in close.note


def test_unavailable_python_says_which_are():
    with pytest.raises(BuildError) as info:
        choose_python(PythonRequest("3.5", ".python-version"), PYTHONS)
    assert info.value.message == ("Python 3.5 (from .python-version) is not available on this Shipyard; "
                                  "available: 3.13.0, 3.12.1, 3.11.7, 3.6.15.")


def test_a_pin_newer_than_any_installed_python_gets_the_newest_said_loudly():
    newer = choose_python(PythonRequest("3.14", ".python-version"), PYTHONS)
    assert newer.interpreter.version == Version("3.13.0")
    assert newer.note is not None
    assert newer.note.startswith("Python 3.14 (from .python-version) is not installed here: using Python 3.13.0, "
                                 "the newest installed.")


def test_manifest_priority_and_reuse():
    assert plan_dependencies({"requirements.txt": "flask", "Pipfile": ""}).kind == "requirements.txt"
    assert plan_dependencies({"requirements.txt": "-e .\nflask"}).reusable is False
    assert plan_dependencies({"pyproject.toml": "[project]\nname='x'\n", "uv.lock": ""}) == DependencyPlan("uv.lock")
    assert plan_dependencies({"setup.py": ""}) == DependencyPlan("setup.py", installs_project=True)
    with pytest.raises(BuildError) as info:
        plan_dependencies({"app.py": ""})
    assert info.value.message.startswith("No dependency manifest found")


def test_a_uv_lock_syncs_only_the_main_dependencies_whatever_its_default_groups():
    # `[tool.uv] default-groups = ["dev", "lint"]`: --no-dev would still install lint.
    argv = install_argv("uv", DependencyPlan("uv.lock"), Path("/venv/bin/python"), None, {})
    assert argv == ["uv", "sync", "--frozen", "--no-default-groups", "--python", "/venv/bin/python"]


def test_poetry_lock_main_group_only():
    lock = ('[[package]]\nname = "flask"\nversion = "3.1.0"\ngroups = ["main"]\nmarkers = "python_version >= \'3.9\'"\n'
            '[[package]]\nname = "pytest"\nversion = "8.3.4"\ngroups = ["dev"]\n'
            '[[package]]\nname = "click"\nversion = "8.1.8"\ncategory = "main"\n')
    assert requirements_from_poetry_lock(lock, "") == ("flask==3.1.0 ; python_version >= '3.9'", "click==8.1.8")


def test_pipenv_files():
    lock = '{"default": {"flask": {"version": "==3.1.0", "extras": ["async"]}, "x": {"git": "https://g/x", "ref": "abc"}}}'
    assert requirements_from_pipfile_lock(lock) == ("flask[async]==3.1.0", "x @ git+https://g/x@abc")
    assert requirements_from_pipfile('[packages]\nflask = "*"\ndjango = ">=4.2"\nreq = {version = "==2", extras = ["s"]}\n') \
        == ("flask", "django>=4.2", "req[s]==2")


def test_start_rules_in_order():
    env: dict[str, str] = {}
    django = {"manage.py": 'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")',
              "mysite/wsgi.py": "application = get_wsgi_application()"}
    assert django_wsgi_path(django["manage.py"]) == "mysite/wsgi.py"
    assert resolve_start_command(django, env) == StartCommand("gunicorn --bind 127.0.0.1:$PORT mysite.wsgi",
                                                              "manage.py (Django)", "django")
    asgi = {"main.py": "from fastapi import FastAPI\napp = FastAPI()\n"}
    assert resolve_start_command(asgi, env).command == \
        "gunicorn --bind 127.0.0.1:$PORT --worker-class uvicorn_worker.UvicornWorker main:app"
    assert resolve_start_command({**asgi, ".s2i/bin/run": ""}, env).rule == ".s2i/bin/run"
    assert resolve_start_command(asgi, {"APP_MODULE": "web:app"}).rule == "APP_MODULE"
    assert resolve_start_command({"main.py": "print(1)"}, env) == StartCommand("python main.py", "main.py")
    assert resolve_start_command({"app.py": "app = 1"}, {"GUNICORN_CONFIG": "g.py"}).command == \
        'gunicorn --bind 127.0.0.1:$PORT --config "$GUNICORN_CONFIG" app:app'
    assert resolve_start_command({"app.py": "app = 1"}, {}, configured="python serve.py").rule == "start command setting"


def test_preflight_checks():
    assert check_port("gunicorn --bind 0.0.0.0:${PORT:-8000} app:app", None) == []
    assert check_port("gunicorn --bind 0.0.0.0:8000 app:app", 8000) == []
    [finding] = check_port("uvicorn main:app --port 8080", None)
    assert finding.level == "error" and "--port 8080" in finding.fix
    assert check_sqlite({"app.py": "DB = 'sqlite:///x.db'"})[0].level == "warning"
    assert check_django_debug("DEBUG = True\n", "mysite/settings.py")[0].message.startswith("mysite/settings.py sets")
    assert check_django_debug("DEBUG = False\n", "s.py") == []
    big = check_files([SourceFile("data.bin", 200 * 1024 * 1024), SourceFile("ok.py", 10),
                       SourceFile("link", 0, "/etc/passwd")])
    assert [f.message for f in big] == ["data.bin is 200 MB, over the 100 MB limit for a file.",
                                        "link is a symlink to /etc/passwd, outside the repository."]
    assert all(isinstance(f, Finding) and f.fix for f in big)


def test_django_static_root_and_s2i_environment():
    assert django_static_root_missing("STATIC_URL = '/static/'\n") is True
    assert django_static_root_missing("STATIC_ROOT = BASE_DIR / 'staticfiles'\n") is False
    assert parse_s2i_environment("# c\nA=1\nB = 'two'\n\nnot a var\n") == {"A": "1", "B": "two"}
