"""Detection: from a repository's files to how to run it. Pure functions over file contents."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass

from shipyard.buildpack.entrypoint import ScriptApp, script_app
from shipyard.errors import BuildError

_PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+)\s*:\s*(.+)$")
FILES_OF_INTEREST = ("Procfile", "wsgi.py", "app.py", "main.py", "asgi.py", "app/main.py", "manage.py",
                     "requirements.txt", "pyproject.toml", "uv.lock", "poetry.lock", "Pipfile", "Pipfile.lock",
                     "setup.py", "setup.cfg", "runtime.txt", ".python-version", ".s2i/bin/run",
                     ".s2i/bin/assemble", ".s2i/environment", "render.yaml")


@dataclass(frozen=True)
class StartCommand:
    command: str
    rule: str  # which rule matched, said in the build log and kept in the manifest
    kind: str = ""  # wsgi | asgi | django when Shipyard wrote the command itself


def parse_procfile(text: str) -> dict[str, str]:
    types: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _PROCFILE_LINE.match(stripped)
        if not match:
            raise BuildError(
                f"Procfile line {number} is not `name: command`: '{stripped}'",
                hint="Each line of a Procfile is `<process type>: <command>`, e.g. `web: gunicorn app:app`.")
        types[match.group(1)] = match.group(2).strip()
    return types


def wsgi_callable(source: str) -> str | None:
    """The module-level WSGI callable's name: `application` (preferred) or `app`."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.AnnAssign,)) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.ImportFrom)):
            names |= {node.name} if isinstance(node, ast.FunctionDef) else {a.asname or a.name for a in node.names}
    for name in ("application", "app"):
        if name in names:
            return name
    return None


_ASGI_IMPORT = re.compile(r"^\s*(from|import)\s+(fastapi|starlette|quart|litestar)\b", re.MULTILINE)
_DJANGO_SETTINGS = re.compile(r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']""")
ASGI_WORKER = "uvicorn_worker.UvicornWorker"


def is_asgi(source: str) -> bool:
    return bool(_ASGI_IMPORT.search(source))


def django_settings_module(manage_py: str) -> str | None:
    match = _DJANGO_SETTINGS.search(manage_py)
    return match.group(1) if match else None


def django_wsgi_path(manage_py: str) -> str | None:
    """The file of the Django project's WSGI module, e.g. `mysite/wsgi.py` for `mysite.settings`."""
    settings = django_settings_module(manage_py)
    return f"{settings.split('.')[0]}/wsgi.py" if settings else None


def gunicorn(target: str, env: Mapping[str, str], worker: str | None = None) -> str:
    parts = ["gunicorn", "--bind 127.0.0.1:$PORT"]
    if worker:
        parts.append(f"--worker-class {worker}")
    if env.get("GUNICORN_CONFIG"):
        parts.append('--config "$GUNICORN_CONFIG"')
    return " ".join([*parts, target])


def _module_rule(files: Mapping[str, str], env: Mapping[str, str], filename: str) -> StartCommand | None:
    source = files.get(filename)
    if source is None:
        return None
    module = filename.removesuffix(".py").replace("/", ".")
    name = wsgi_callable(source)
    found = script_app(source)
    if name and is_asgi(source):
        return StartCommand(gunicorn(f"{module}:{name}", env, ASGI_WORKER), served_rule(filename, found), "asgi")
    if name:
        return StartCommand(gunicorn(f"{module}:{name}", env), served_rule(filename, found), "wsgi")
    return None


def _script_rule(files: Mapping[str, str], env: Mapping[str, str], filename: str) -> StartCommand | None:
    """A script (`python main.py`) whose app object gunicorn can serve instead of its development server."""
    found = script_app(files[filename])
    if found is None:
        return None
    target = f"{filename.removesuffix('.py').replace('/', '.')}:{found.name}"
    worker = ASGI_WORKER if found.kind == "asgi" else None
    return StartCommand(gunicorn(target, env, worker), served_rule(filename, found, always=True), found.kind)


def served_rule(filename: str, found: ScriptApp | None, always: bool = False) -> str:
    """The rule as the build log says it: when the module serves itself too (`app.run()`), why gunicorn
    serves it instead, and what of the script gunicorn does not run."""
    if found is None or not (found.runs or always):
        return filename
    server = "gunicorn with uvicorn workers" if found.kind == "asgi" else "gunicorn"
    said = f"{filename} (a {found.framework} app: {server} serves it"
    if found.runs:
        said += f", not {found.runs}" + ("'s development server" if found.kind == "wsgi" else "")
    if found.debug:
        said += ", whose debugger would let anyone who reaches it run code on the server"
    if found.setup:
        said += ("; gunicorn does not run the `if __name__ == \"__main__\":` block: move the setup in it to "
                 "module level or a release command")
    return said + ")"


def resolve_start_command(files: Mapping[str, str], env: Mapping[str, str], configured: str = "") -> StartCommand:
    """design.md's order, first match wins; `configured` is the app's start command setting."""
    if configured.strip():
        return StartCommand(configured.strip(), "start command setting")
    if env.get("APP_RUN", "").strip():
        return StartCommand(env["APP_RUN"].strip(), "APP_RUN")
    if "Procfile" in files:
        web = parse_procfile(files["Procfile"]).get("web")
        if web:
            return StartCommand(web, "Procfile")
    if ".s2i/bin/run" in files:
        return StartCommand("./.s2i/bin/run", ".s2i/bin/run")
    module = env.get("GUNICORN_APP_MODULE") or env.get("APP_MODULE")
    if module:
        return StartCommand(gunicorn(module, env), "GUNICORN_APP_MODULE" if env.get("GUNICORN_APP_MODULE")
                            else "APP_MODULE", "wsgi")
    if rule := _module_rule(files, env, "wsgi.py"):
        return rule
    if "manage.py" in files and (wsgi := django_wsgi_path(files["manage.py"])) and wsgi in files:
        target = wsgi.removesuffix(".py").replace("/", ".")
        return StartCommand(gunicorn(target, env), "manage.py (Django)", "django")
    if "app.py" in files:
        return (_module_rule(files, env, "app.py") or _script_rule(files, env, "app.py")
                or StartCommand("python app.py", "app.py"))
    for filename in ("main.py", "asgi.py", "app/main.py"):
        source = files.get(filename)
        if source is not None and is_asgi(source) and (rule := _module_rule(files, env, filename)):
            return rule
    if "main.py" in files:
        return _script_rule(files, env, "main.py") or StartCommand("python main.py", "main.py")
    raise BuildError(
        "Don't know how to run your application.",
        hint="Tell Shipyard how, in one of these ways:\n"
             "  - set APP_RUN: `shipyard config set <app> APP_RUN=\"gunicorn myapp:app\"`\n"
             "  - add a Procfile with a `web:` line, e.g. `web: gunicorn myapp:app`\n"
             "  - add a wsgi.py that exposes `application` (or `app`)")
