"""Pre-flight: a fixed port in the gunicorn config file the start command reads, and explicit start commands that
serve the app through Werkzeug's debugger (pure checks over the repository's Python files)."""

from __future__ import annotations

import pytest

from shipyard.buildpack.preflight import (EXPLICIT_RULES, check_debug_server, check_gunicorn_config, config_binds,
                                          debugger_in_source, gunicorn_config_path)

FIXED = 'import multiprocessing\nbind = "0.0.0.0:8000"\nworkers = multiprocessing.cpu_count() * 2 + 1\n'


def test_which_config_file_gunicorn_reads() -> None:
    assert gunicorn_config_path("gunicorn app:app", {}) == "gunicorn.conf.py"  # gunicorn's own default
    assert gunicorn_config_path("gunicorn -c gunicorn_config.py app:app", {}) == "gunicorn_config.py"
    assert gunicorn_config_path("gunicorn --config=./conf/gunicorn.py app:app", {}) == "conf/gunicorn.py"
    assert gunicorn_config_path("python -m gunicorn --config 'gc.py' app:app", {}) == "gc.py"
    assert gunicorn_config_path('gunicorn --config "$GUNICORN_CONFIG" app:app',
                                {"GUNICORN_CONFIG": "deploy/gunicorn.py"}) == "deploy/gunicorn.py"
    assert gunicorn_config_path("gunicorn app:app", {"GUNICORN_CMD_ARGS": "-c settings/gc.py"}) == "settings/gc.py"
    assert gunicorn_config_path("gunicorn -c python:conf.gunicorn app:app", {}) == "conf/gunicorn.py"
    assert gunicorn_config_path("./start.sh gunicorn.conf.py", {}) is None  # no gunicorn runs here
    assert gunicorn_config_path("uvicorn main:app", {}) is None


def test_fixed_binds_only() -> None:
    assert config_binds(FIXED) == ["0.0.0.0:8000"]
    assert config_binds('bind = ["0.0.0.0:8000", "[::]:8000"]\n') == ["0.0.0.0:8000", "[::]:8000"]
    assert config_binds('import os\nbind = f"0.0.0.0:{os.environ.get(\'PORT\', \'8000\')}"\n') == []
    assert config_binds('import os\nbind = "0.0.0.0:" + os.environ["PORT"]\n') == []
    assert config_binds("workers = 2\n") == [] and config_binds("bind = (\n") == []  # none, or not Python


def test_a_fixed_port_in_the_config_file_is_overridden_and_said() -> None:
    [finding] = check_gunicorn_config("gunicorn app:app", {"gunicorn.conf.py": FIXED}, {}, None)
    assert finding.level == "warning"
    assert finding.message == ('gunicorn.conf.py sets `bind = "0.0.0.0:8000"` (port 8000): Shipyard makes gunicorn '
                               "listen on $PORT instead (GUNICORN_CMD_ARGS=--bind=0.0.0.0:$PORT overrides config "
                               "files).")
    assert "`bind = f\"0.0.0.0:{os.environ.get('PORT', '8000')}\"`" in finding.fix
    assert "delete the line" in finding.fix
    named = check_gunicorn_config("gunicorn -c gunicorn_config.py wsgi:app", {"gunicorn_config.py": FIXED}, {}, None)
    assert [f.message.split(" ")[0] for f in named] == ["gunicorn_config.py"]


@pytest.mark.parametrize("command,sources,env,fixed_port", [
    ("gunicorn --bind 0.0.0.0:$PORT app:app", {"gunicorn.conf.py": FIXED}, {}, None),  # the command line wins
    ("gunicorn --bind 127.0.0.1:$PORT mysite.wsgi", {"gunicorn.conf.py": FIXED}, {}, None),  # Shipyard's own
    ("gunicorn app:app", {"gunicorn.conf.py": FIXED}, {"GUNICORN_CMD_ARGS": "--bind=0.0.0.0:5000"}, None),
    ("gunicorn app:app", {"gunicorn.conf.py": FIXED}, {}, 8000),  # the app's fixed port setting
    ("gunicorn app:app", {"gunicorn_config.py": FIXED}, {}, None),  # a file gunicorn is not told to read
    ("gunicorn -c missing.py app:app", {"gunicorn.conf.py": FIXED}, {}, None),
    ("./run.sh", {"gunicorn.conf.py": FIXED}, {}, None),
])
def test_config_files_that_do_not_decide_the_port(command: str, sources: dict[str, str], env: dict[str, str],
                                                  fixed_port: int | None) -> None:
    assert check_gunicorn_config(command, sources, env, fixed_port) == []


def test_a_config_binding_an_address_instances_do_not_have() -> None:
    [finding] = check_gunicorn_config("gunicorn app:app", {"gunicorn.conf.py": 'bind = "10.1.2.3:8000"\n'}, {}, 8000)
    assert finding.level == "error" and "binds 10.1.2.3, an address instances don't have" in finding.message


APP_RUN_DEBUG = ('from flask import Flask\napp = Flask(__name__)\n\nif __name__ == "__main__":\n'
                 '    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", 5000)), debug=True)\n')
APP_RUN = APP_RUN_DEBUG.replace(", debug=True", "")


def test_the_explicit_rules_are_detections_names() -> None:
    assert EXPLICIT_RULES == ("start command setting", "APP_RUN", "Procfile")


@pytest.mark.parametrize("command,sources,env,says", [
    ("python app.py", {"app.py": APP_RUN_DEBUG}, {}, "app.py, which serves the app with Werkzeug's debugger"),
    ("python3 -u src/app.py", {"src/app.py": APP_RUN_DEBUG}, {}, "src/app.py"),
    ("python -m app", {"app.py": APP_RUN_DEBUG}, {}, "app.py"),
    ("python app.py", {"app.py": APP_RUN}, {"FLASK_DEBUG": "1"}, "app.py"),  # app.run() reads FLASK_DEBUG
    ("FLASK_DEBUG=1 python app.py", {"app.py": APP_RUN}, {}, "app.py"),
    ("flask run --host 0.0.0.0 --port $PORT --debug", {}, {}, "Flask's development server with its debugger"),
    ("flask --app todo --debug run -h 0.0.0.0 -p $PORT", {}, {}, "Flask's development server"),
    ("flask run --debugger -p $PORT", {}, {}, "Flask's development server"),
    ("FLASK_DEBUG=true flask run -p $PORT", {}, {}, "Flask's development server"),
    ("flask run -p $PORT", {}, {"FLASK_ENV": "development"}, "Flask's development server"),
])
def test_the_werkzeug_debugger_fails_pre_flight(command: str, sources: dict[str, str], env: dict[str, str],
                                                says: str) -> None:
    [finding] = check_debug_server(command, sources, env)
    assert finding.level == "error" and says in finding.message
    assert "runs any Python code a visitor types" in finding.message
    assert "gunicorn --bind 0.0.0.0:$PORT" in finding.fix


def test_the_fix_names_the_apps_module() -> None:
    [finding] = check_debug_server("python src/app.py", {"src/app.py": APP_RUN_DEBUG}, {})
    assert "`web: gunicorn --bind 0.0.0.0:$PORT src.app:app`" in finding.fix
    [flask] = check_debug_server("flask --app todo:create_app() run --debug", {}, {})
    assert "`web: gunicorn --bind 0.0.0.0:$PORT todo:create_app()`" in flask.fix


@pytest.mark.parametrize("command,sources,env", [
    ("python app.py", {"app.py": APP_RUN}, {}),
    ("python app.py", {"app.py": APP_RUN.replace("port=", 'debug=os.environ.get("DEBUG") == "1", port=')}, {}),
    ("python app.py", {"app.py": APP_RUN_DEBUG.replace("debug=True", "debug=False")}, {}),
    ("flask run --no-debug -p $PORT", {}, {}),
    ("flask run -p $PORT", {}, {"FLASK_DEBUG": "0"}),
    ("gunicorn --bind 0.0.0.0:$PORT app:app", {"app.py": APP_RUN_DEBUG}, {}),  # gunicorn never calls app.run()
    ("python worker.py", {"app.py": APP_RUN_DEBUG}, {}),  # not the module it runs
])
def test_what_is_not_the_debugger(command: str, sources: dict[str, str], env: dict[str, str]) -> None:
    assert check_debug_server(command, sources, env) == []


def test_other_ways_into_the_debugger() -> None:
    assert debugger_in_source("from werkzeug.serving import run_simple\nrun_simple('0.0.0.0', 80, app, "
                              "use_debugger=True)\n", False)
    assert debugger_in_source("from werkzeug.debug import DebuggedApplication\napp = DebuggedApplication(app)\n", False)
    assert debugger_in_source("app = Flask(__name__)\napp.debug = True\napp.run()\n", False)
    assert debugger_in_source("app = Flask(__name__)\napp.config['DEBUG'] = True\napp.run()\n", False)
    assert not debugger_in_source("app = Flask(__name__)\napp.debug = True\n", False)  # never runs its own server
    assert not debugger_in_source("def broken(:\n", True)
