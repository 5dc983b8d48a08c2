import pytest

from shipyard.buildpack.install import summarize_uv_failure
from shipyard.buildpack.detect import StartCommand, parse_procfile, resolve_start_command, wsgi_callable
from shipyard.errors import BuildError


def test_app_run_wins_over_everything():
    files = {"Procfile": "web: gunicorn a:b\n", "wsgi.py": "application = 1\n"}
    assert resolve_start_command(files, {"APP_RUN": "python serve.py"}) == StartCommand("python serve.py", "APP_RUN")


def test_procfile_web_before_wsgi():
    files = {"Procfile": "# comment\n\nweb: gunicorn --bind=0.0.0.0:$PORT --threads=4 \"myapp:start_app()\"\n",
             "wsgi.py": "application = 1\n"}
    assert resolve_start_command(files, {}) == StartCommand(
        'gunicorn --bind=0.0.0.0:$PORT --threads=4 "myapp:start_app()"', "Procfile")


def test_procfile_without_web_falls_through_to_wsgi():
    files = {"Procfile": "worker: python work.py\n", "wsgi.py": "from app import app\n"}
    assert resolve_start_command(files, {}) == StartCommand("gunicorn --bind 127.0.0.1:$PORT wsgi:app", "wsgi.py", "wsgi")


def test_app_py_with_flask_app_and_without():
    assert resolve_start_command({"app.py": "app = Flask(__name__)\n"}, {}).command.endswith("app:app")
    assert resolve_start_command({"app.py": "print('hi')\n"}, {}) == StartCommand("python app.py", "app.py")


def test_wsgi_prefers_application():
    assert wsgi_callable("app = 1\napplication = app\n") == "application"
    assert wsgi_callable("def application(environ, start_response): ...\n") == "application"
    assert wsgi_callable("this is not python(") is None


def test_nothing_to_run_names_the_fixes():
    with pytest.raises(BuildError) as info:
        resolve_start_command({"lib.py": "x = 1"}, {})
    assert info.value.message == "Don't know how to run your application."
    for fix in ("APP_RUN", "Procfile", "wsgi.py"):
        assert fix in info.value.hint


def test_procfile_syntax_error_names_the_line():
    with pytest.raises(BuildError) as info:
        parse_procfile("web: gunicorn app:app\nthis line is wrong\n")
    assert info.value.message == "Procfile line 2 is not `name: command`: 'this line is wrong'"


def test_uv_failure_summary_is_the_cause_line():
    lines = ["Resolved 3 packages", "error: No solution found when resolving dependencies",
             "  cause: Because nope was not found in the package registry, we can conclude …"]
    assert summarize_uv_failure(lines) == "Because nope was not found in the package registry, we can conclude …"
