"""Defaults Heroku users expect, as pure decisions: formation, rollback target, release command, detection,
psql's arguments, and a database host every libpq verifies."""

from __future__ import annotations

import pytest

from shipyard.addons.access import listen_addresses, pg_hba
from shipyard.addons.postgres import moved_to_client_host
from shipyard.buildpack.detect import StartCommand, resolve_start_command
from shipyard.buildpack.entrypoint import script_app
from shipyard.cli.databases import psql_argv
from shipyard.control.rollout import without_it
from shipyard.release.plan import (default_scale, effective_formation, rollback_target, unscaled_types,
                                   with_release_command)

TYPES = {"web": "gunicorn app:app", "worker": "python worker.py", "clock": "python clock.py",
         "release": "flask db upgrade"}


def test_web_starts_at_one_every_other_type_at_zero() -> None:
    assert (default_scale("web"), default_scale("worker"), default_scale("clock")) == (1, 0, 0)
    assert effective_formation(TYPES, {}) == {"clock": 0, "web": 1, "worker": 0}
    assert effective_formation(TYPES, {"web": 3, "worker": 2}) == {"clock": 0, "web": 3, "worker": 2}
    assert effective_formation({}, {"worker": 1}) == {"worker": 1}  # scaled before the first release


def test_the_deploy_names_only_the_types_nobody_scaled_yet() -> None:
    assert unscaled_types(TYPES, {}) == ["clock", "worker"]
    assert unscaled_types(TYPES, {"worker": 0}) == ["clock"]  # an explicit 0 is a choice: said once, when made
    assert unscaled_types(TYPES, {"worker": 1, "clock": 2}) == []
    assert unscaled_types({"web": "gunicorn app:app"}, {}) == []


def test_a_failing_background_type_says_how_to_release_without_it() -> None:
    assert without_it("Fix the error above.", "todo", "web") == "Fix the error above."
    assert without_it("Fix the error above.", "todo", "worker") == (
        "Fix the error above.\nTo release without worker for now: `shipyard ps:scale todo worker=0`, then deploy "
        "again.")
    assert without_it(None, "todo", "clock").startswith("To release without clock")


@pytest.mark.parametrize(("releases", "current", "expected"), [
    ([(1, "succeeded"), (2, "succeeded"), (3, "succeeded")], 3, 2),
    ([(1, "succeeded"), (2, "failed"), (3, "interrupted"), (4, "succeeded")], 4, 1),  # never-live ones skipped
    ([(1, "succeeded"), (2, "succeeded"), (3, "succeeded"), (4, "failed")], 2, 1),  # before the live one
    ([(1, "succeeded"), (2, "succeeded"), (3, "succeeded")], 1, None),  # the first live release
    ([(1, "failed")], None, None),  # nothing went live yet
])
def test_rollback_without_a_version_takes_the_previous_release_that_went_live(
        releases: list[tuple[int, str]], current: int | None, expected: int | None) -> None:
    assert rollback_target(releases, current) == expected


def test_the_release_command_setting_wins_over_the_procfile() -> None:
    assert with_release_command(TYPES, "python manage.py migrate")["release"] == "python manage.py migrate"
    assert with_release_command(TYPES, "  ") == TYPES
    assert with_release_command({"web": "x"}, "./migrate.sh") == {"web": "x", "release": "./migrate.sh"}


FLASK_MAIN = '''from flask import Flask
app = Flask(__name__)

@app.get("/")
def index():
    return "hi"

if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", 5000)), debug=True)
'''


def test_a_flask_script_runs_on_gunicorn_not_on_its_debugger() -> None:
    start = resolve_start_command({"main.py": FLASK_MAIN}, {})
    assert start == StartCommand(
        "gunicorn --bind 127.0.0.1:$PORT main:app",
        "main.py (a Flask app: gunicorn serves it, not app.run()'s development server, whose debugger would let "
        "anyone who reaches it run code on the server)", "wsgi")
    # app.py with an app object was served by gunicorn already; the log now says why its app.run() is not used.
    assert resolve_start_command({"app.py": FLASK_MAIN}, {}).rule.startswith("app.py (a Flask app: gunicorn")


def test_any_name_any_framework_and_the_main_block_setup_gunicorn_would_skip() -> None:
    source = ('import flask\nserver = flask.Flask(__name__)\nif __name__ == "__main__":\n'
              '    with server.app_context():\n        db.create_all()\n    server.run()\n')
    start = resolve_start_command({"app.py": source}, {})
    assert start.command == "gunicorn --bind 127.0.0.1:$PORT app:server" and start.kind == "wsgi"
    assert "move the setup in it to module level or a release command" in start.rule
    assert "debugger" not in start.rule
    asgi = ('from fastapi import FastAPI\nimport uvicorn\napi = FastAPI()\n'
            'if __name__ == "__main__":\n    uvicorn.run(api, port=8000, reload=True)\n')
    start = resolve_start_command({"main.py": asgi}, {})
    assert start == StartCommand("gunicorn --bind 127.0.0.1:$PORT --worker-class uvicorn_worker.UvicornWorker main:api",
                                 "main.py (a FastAPI app: gunicorn with uvicorn workers serves it, not uvicorn.run())",
                                 "asgi")


@pytest.mark.parametrize("source", [
    # no app object a production server knows
    "from http.server import HTTPServer\nHTTPServer(('', 8000), Handler).serve_forever()\n",
    # served at import: gunicorn importing the module would start the development server too
    "from flask import Flask\napp = Flask(__name__)\napp.run(host='0.0.0.0', port=int(os.environ['PORT']))\n",
    "from flask import Flask\napp = Flask(__name__)\nif 'DYNO' in os.environ:\n    app.run()\n",
    # served by something else that may matter (websockets)
    "from flask import Flask\nfrom flask_socketio import SocketIO\napp = Flask(__name__)\nsocketio = SocketIO(app)\n"
    "if __name__ == '__main__':\n    socketio.run(app)\n",
    "from flask import Flask\nfrom waitress import serve\napp = Flask(__name__)\n"
    "if __name__ == '__main__':\n    serve(app, port=8080)\n",
    "this is not python(",
])
def test_scripts_that_stay_scripts(source: str) -> None:
    assert script_app(source) is None
    assert resolve_start_command({"main.py": source}, {}) == StartCommand("python main.py", "main.py")


def test_a_factory_product_in_a_flask_module_counts_and_debug_false_is_no_debugger() -> None:
    found = script_app("from flask import Flask\nfrom myapp import create_app\napp = create_app()\n"
                       "if __name__ == '__main__':\n    app.run(debug=False)\n")
    assert found is not None and (found.name, found.framework, found.runs, found.debug, found.setup) == (
        "app", "Flask", "app.run()", False, False)


def test_psql_runs_scripts_to_their_first_error() -> None:
    assert psql_argv([], None, interactive=True) == ["psql"]
    assert psql_argv(["select 1"], None, interactive=True) == ["psql", "--command", "select 1",
                                                               "--set", "ON_ERROR_STOP=1"]
    assert psql_argv([], None, interactive=False) == ["psql", "--set", "ON_ERROR_STOP=1"]  # `< file.sql`
    assert psql_argv(["\\dt", "select 2"], "seed.sql", interactive=False) == [
        "psql", "--command", "\\dt", "--command", "select 2", "--file", "seed.sql", "--set", "ON_ERROR_STOP=1"]


CA = "/root/.local/share/shipyard/ca/ca.crt"
OLD = {"DATABASE_URL": "postgresql://app_todo:p%40ss@127.0.0.1:41234/app_todo", "PGHOST": "127.0.0.1",
       "PGPORT": "41234", "PGSSLMODE": "verify-full", "PGSSLROOTCERT": CA}


def test_databases_attached_before_move_to_localhost() -> None:
    assert moved_to_client_host(OLD, CA) == {
        "PGHOST": "localhost", "DATABASE_URL": "postgresql://app_todo:p%40ss@localhost:41234/app_todo"}
    assert moved_to_client_host({**OLD, **moved_to_client_host(OLD, CA)}, CA) == {}  # once
    assert moved_to_client_host({**OLD, "PGSSLROOTCERT": "/etc/ssl/theirs.pem"}, CA) == {}  # an external server
    assert moved_to_client_host({"GREETING": "hi"}, CA) == {}


def test_the_server_listens_where_localhost_may_resolve_and_admits_both_loopbacks() -> None:
    assert listen_addresses(ipv6_loopback=True) == "127.0.0.1,::1"
    assert listen_addresses(ipv6_loopback=False) == "127.0.0.1"
    rules = [line.split() for line in pg_hba().splitlines()[1:]]
    assert ["hostssl", "sameuser", "all", "127.0.0.1/32", "scram-sha-256"] in rules
    assert ["hostssl", "sameuser", "all", "::1/128", "scram-sha-256"] in rules
    assert rules[-2:] == [["host", "all", "all", "0.0.0.0/0", "reject"], ["host", "all", "all", "::/0", "reject"]]


def test_an_object_named_app_that_no_factory_made_is_not_guessed() -> None:
    dash = ("import flask\nimport dash\napp = dash.Dash(__name__)\nserver = app.server\n"
            "if __name__ == '__main__':\n    app.run_server(debug=True)\n")
    assert script_app(dash) is None
    assert resolve_start_command({"main.py": dash}, {}).command == "python main.py"
