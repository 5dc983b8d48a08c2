"""Pre-flight checks: what would break at run time, found before installing anything.

Each check is a pure function returning findings; an error fails the build, a
warning is printed in the build log. Every finding carries its one-line fix.
"""

from __future__ import annotations

import ast
import os
import posixpath
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shipyard.buildpack import nofollow
from shipyard.buildpack.detect import wsgi_callable

MAX_FILE_BYTES = 100 * 1024 * 1024
_SERVERS = re.compile(r"\b(gunicorn|uvicorn|hypercorn|daphne|waitress-serve|runserver|flask run)\b")
_BIND = re.compile(r"(?:--bind|-b)[= ]+['\"]?([^\s'\"]+)")
_PORT = re.compile(r"(?:--port|-p)[= ]+['\"]?([^\s'\"]+)|runserver\s+(?:[^\s:]+:)?(\d+)")
_HOST_FLAGS = re.compile(r"--host[= ]+['\"]?([^\s'\"]+)")


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning"
    message: str
    fix: str


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the repository root
    size: int
    link_target: str | None = None  # for symlinks out of the repository: where they point
    is_link: bool = False  # any symlink: never read through


def check_release_command(process_types: Mapping[str, str]) -> list[Finding]:
    release = process_types.get("release")
    if release is None or not _SERVERS.search(release):
        return []
    return [Finding("error", f"The Procfile's release command starts a server: `{release}`.",
                    "`release:` runs once per deploy and must exit (e.g. `release: flask db upgrade`); "
                    "start servers from `web:`.")]


def split_bind(value: str) -> tuple[str, str]:
    """`0.0.0.0:${PORT:-8000}` → ("0.0.0.0", "${PORT:-8000}"); `:8000` → ("", "8000")."""
    if value.startswith("unix:"):
        return "unix", ""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, rest.removeprefix(":")
    host, _, port = value.partition(":")
    return (host, port) if port else ("", host) if host.isdigit() or "$" in host else (host, "")


def check_port(command: str, fixed_port: int | None) -> list[Finding]:
    findings = []
    ports = [split_bind(m.group(1)) for m in _BIND.finditer(command)]
    ports += [("", m.group(1) or m.group(2)) for m in _PORT.finditer(command)]
    for host, port in ports:
        if port and "PORT" not in port and not (fixed_port and port == str(fixed_port)):
            findings.append(Finding(
                "error", f"The start command listens on port {port}, not on $PORT: `{command}`.",
                f"Use `$PORT` (e.g. `--bind 0.0.0.0:$PORT`), or tell Shipyard the app's fixed port with "
                f"`shipyard apps set <app> --port {port}`."))
        if host and host != "unix":
            findings += check_host(host, command)
    for match in _HOST_FLAGS.finditer(command):
        findings += check_host(match.group(1).strip("[]"), command)
    return findings


def check_host(host: str, command: str) -> list[Finding]:
    if host in ("", "0.0.0.0", "127.0.0.1", "::", "$HOST", "${HOST}"):
        return []
    if host in ("localhost", "::1"):
        return [Finding("warning", f"The start command binds {host}, which may mean IPv6 only: `{command}`.",
                        "Bind 0.0.0.0 (or 127.0.0.1): the edge reaches instances over IPv4.")]
    return [Finding("error", f"The start command binds {host}, an address instances don't have: `{command}`.",
                    "Bind 0.0.0.0, e.g. `--bind 0.0.0.0:$PORT`.")]


# gunicorn run by the command itself (`gunicorn …`, `python -m gunicorn …`), not a file named after it.
_RUNS_GUNICORN = re.compile(r"(?:^|[\s;&|/])gunicorn(?=\s|$)")
_CONFIG_FLAG = re.compile(r"(?:^|\s)(?:-c|--config)(?:=|\s+)['\"]?([^\s'\"]+)")
DEFAULT_GUNICORN_CONFIG = "gunicorn.conf.py"  # what gunicorn reads from its working folder without -c


def gunicorn_config_path(command: str, env: Mapping[str, str]) -> str | None:
    """The config file the command's gunicorn reads, relative to the app's folder: `-c FILE` (in the command,
    or in GUNICORN_CMD_ARGS; `$GUNICORN_CONFIG` expanded), else `gunicorn.conf.py`. None: no gunicorn here."""
    if not _RUNS_GUNICORN.search(command):
        return None
    match = _CONFIG_FLAG.search(command) or _CONFIG_FLAG.search(env.get("GUNICORN_CMD_ARGS", ""))
    path = match.group(1) if match else DEFAULT_GUNICORN_CONFIG
    if path.strip("${}") == "GUNICORN_CONFIG":
        path = env.get("GUNICORN_CONFIG", "")
    if path.startswith("python:"):  # a module: gunicorn imports it
        path = path.removeprefix("python:").replace(".", "/") + ".py"
    return posixpath.normpath(path.removeprefix("file:")) if path else None


def config_binds(source: str) -> list[str]:
    """The fixed addresses a gunicorn config file assigns to `bind` at module level (a string or a list of
    them); a computed one (`f"0.0.0.0:{os.environ['PORT']}"`) is not fixed and not returned."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    binds: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "bind" for t in node.targets):
            values = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            binds = [v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    return binds


def check_gunicorn_config(command: str, sources: Mapping[str, str], env: Mapping[str, str],
                          fixed_port: int | None) -> list[Finding]:
    """A fixed `bind` in the gunicorn config file the start command's gunicorn reads, as check_port finds
    one in the command. A --bind on the command line (or in GUNICORN_CMD_ARGS) wins over the file's, so
    then the file does not matter; nor does a config file gunicorn is not told to read."""
    if _BIND.search(command) or _BIND.search(env.get("GUNICORN_CMD_ARGS", "")):
        return []
    path = gunicorn_config_path(command, env)
    if path is None or path not in sources:
        return []
    findings = []
    for value in config_binds(sources[path]):
        host, port = split_bind(value)
        if port.isdigit() and not (fixed_port and port == str(fixed_port)):
            # Not an error: instances get GUNICORN_CMD_ARGS=--bind=0.0.0.0:$PORT, which gunicorn ranks over its
            # config file (runtime/instance.py), so the app listens where the edge connects anyway.
            findings.append(Finding(
                "warning", f"{path} sets `bind = \"{value}\"` (port {port}): Shipyard makes gunicorn listen on "
                "$PORT instead (GUNICORN_CMD_ARGS=--bind=0.0.0.0:$PORT overrides config files).",
                f"To make it explicit, read the port from the environment in {path}: `bind = f\"0.0.0.0:"
                f"{{os.environ.get('PORT', '{port}')}}\"`, or delete the line."))
        if host and host != "unix":
            findings += check_host(host, f"{path}: bind = \"{value}\"")
    return findings


# Commands Shipyard did not write (detect.StartCommand.rule): the app says how it runs, and is told when that
# is unsafe. (A detected `python app.py` is detection's to serve with gunicorn instead.)
EXPLICIT_RULES = ("start command setting", "APP_RUN", "Procfile")
_FLASK_RUN = re.compile(r"(?:^|[\s;&|/])flask\b.*\brun\b")
_DEBUG_FLAG = re.compile(r"(?<![\w-])--debug(?:ger)?\b")
_DEBUG_ENV = re.compile(r"\bFLASK_DEBUG=['\"]?(?:1|true|yes|on)\b|\bFLASK_ENV=['\"]?development\b", re.IGNORECASE)
_PYTHON_RUNS = re.compile(r"(?:^|[\s;&|/])python[\d.]*\s+(?:-[a-zA-Z]+\s+)*?(-m\s+)?([\w.][\w./-]*)")
_FLASK_APP = re.compile(r"(?:--app|-A)(?:=|\s+)['\"]?([^\s'\"]+)")


def debug_in_env(env: Mapping[str, str]) -> bool:
    """FLASK_DEBUG=1 (or FLASK_ENV=development, before Flask 2.3) turns the debugger on in `flask run` and
    in `app.run()` alike."""
    return bool(_DEBUG_ENV.search(" ".join(f"{k}={env[k]}" for k in ("FLASK_DEBUG", "FLASK_ENV") if k in env)))


def script_source(command: str, sources: Mapping[str, str]) -> tuple[str, str] | None:
    """(path, source) of the module `python app.py` / `python -m app` runs, among the repository's files."""
    match = _PYTHON_RUNS.search(command)
    if not match:
        return None
    target = match.group(2)
    if match.group(1):
        module = target.replace(".", "/")
        candidates = [f"{module}.py", f"{module}/__main__.py"]
    else:
        candidates = [posixpath.normpath(target)]
    return next(((path, sources[path]) for path in candidates if path in sources), None)


def _truthy(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and bool(node.value)


def debugger_in_source(source: str, env_debug: bool) -> bool:
    """Whether a module serves itself through Werkzeug's debugger: `app.run(debug=True)`,
    `run_simple(…, use_debugger=True)`, `DebuggedApplication(app)`, `app.debug = True` (or FLASK_DEBUG set)
    with a run call. A computed flag (`debug=os.environ.get(…) == "1"`) is the app's own choice: not flagged."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    runs, debug_set = False, env_debug
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name == "DebuggedApplication":
                return True
            if name in ("run", "run_simple"):
                runs = True
                if any(k.arg in ("debug", "use_debugger") and _truthy(k.value) for k in node.keywords):
                    return True
        elif isinstance(node, ast.Assign) and _truthy(node.value) and any(map(_debug_flag, node.targets)):
            debug_set = True
    return runs and debug_set


def _debug_flag(target: ast.expr) -> bool:
    """`app.debug` or `app.config["DEBUG"]` as an assignment's target."""
    if isinstance(target, ast.Attribute):
        return target.attr == "debug"
    return (isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant)
            and target.slice.value == "DEBUG")


def check_debug_server(command: str, sources: Mapping[str, str], env: Mapping[str, str]) -> list[Finding]:
    """An explicit start command serving the app through Werkzeug's debugger: its console (/console, and the
    one on every error page) runs any Python a visitor types, so anyone who reaches the app owns its process."""
    why = None
    if _FLASK_RUN.search(command) and (_DEBUG_FLAG.search(command) or _DEBUG_ENV.search(command)
                                       or debug_in_env(env)):
        why = "Flask's development server with its debugger (`--debug` or FLASK_DEBUG)"
        named = (found.group(1) if (found := _FLASK_APP.search(command)) else env.get("FLASK_APP", "app"))
        module, _, app = named.removesuffix(".py").partition(":")
        app = app or "app"
    elif (script := script_source(command, sources)) and debugger_in_source(
            script[1], debug_in_env(env) or bool(_DEBUG_ENV.search(command))):
        why = f"{script[0]}, which serves the app with Werkzeug's debugger (debug=True)"
        module = script[0].removesuffix(".py").removesuffix("/__main__").replace("/", ".")
        app = wsgi_callable(script[1]) or "app"
    if why is None:
        return []
    return [Finding("error", f"The start command `{command}` runs {why}: its console runs any Python code a "
                             "visitor types, so anyone who can reach the app could take over the server.",
                    f"Serve the app with gunicorn instead, e.g. `web: gunicorn --bind 0.0.0.0:$PORT {module}:{app}` "
                    "in the Procfile (or the app's start command), and turn the debugger off (no debug=True, "
                    "--debug or FLASK_DEBUG); use it on your own machine only.")]


def check_sqlite(sources: Mapping[str, str]) -> list[Finding]:
    hits = sorted(path for path, text in sources.items() if "sqlite:///" in text)
    if not hits:
        return []
    return [Finding("warning", f"{hits[0]} uses SQLite (`sqlite:///`): the local disk is wiped on every restart.",
                    "Keep data in the PostgreSQL add-on (`shipyard addons create <app> postgres`) and read "
                    "DATABASE_URL.")]


def check_django_debug(settings_source: str | None, settings_path: str) -> list[Finding]:
    if settings_source and re.search(r"^DEBUG\s*=\s*True\b", settings_source, re.MULTILINE):
        return [Finding("warning", f"{settings_path} sets DEBUG = True: error pages show your code and settings.",
                        "Read it from the environment, e.g. `DEBUG = os.environ.get(\"DEBUG\") == \"1\"`.")]
    return []


def check_files(files: Sequence[SourceFile]) -> list[Finding]:
    findings = []
    for f in files:
        if f.link_target is not None:
            findings.append(Finding("error", f"{f.path} is a symlink to {f.link_target}, outside the repository.",
                                    "Replace the link with the file itself, or point it inside the repository."))
        elif f.size > MAX_FILE_BYTES:
            findings.append(Finding("error", f"{f.path} is {f.size // (1024 * 1024)} MB, over the "
                                             f"{MAX_FILE_BYTES // (1024 * 1024)} MB limit for a file.",
                                    "Keep large data out of the repository (object storage, or the database)."))
    return findings


def points_outside(rel: str, target: str) -> bool:
    """Whether a link at rel leaves the repository, judged from its text alone: the platform never follows it
    (a link to another link is judged on its own, so a chain out is caught at the link that leaves)."""
    if posixpath.isabs(target):
        return True
    return posixpath.normpath(posixpath.join(posixpath.dirname(rel), target)).split("/")[0] == ".."


def scan_tree(root: Path) -> list[SourceFile]:
    """The repository's files with sizes and link targets (the I/O side of check_files); links are not followed."""
    found = []
    for folder, dirs, files in os.walk(root):  # os.walk lists a linked folder but does not descend into it
        base = Path(folder).relative_to(root)
        if base == Path("."):
            dirs[:] = [d for d in dirs if d != ".git"]
        for name in sorted(dirs + files):
            rel = (base / name).as_posix()
            st = (Path(folder) / name).lstat()
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(Path(folder) / name)
                found.append(SourceFile(rel, 0, target if points_outside(rel, target) else None, is_link=True))
            elif stat.S_ISREG(st.st_mode):
                found.append(SourceFile(rel, st.st_size))
    return sorted(found, key=lambda f: f.path)


def python_sources(root: Path, files: Sequence[SourceFile], limit: int = 1024 * 1024) -> dict[str, str]:
    sources = {}
    for f in files:
        if f.path.endswith(".py") and not f.is_link and f.size < limit:
            try:
                sources[f.path] = nofollow.read_text(root, f.path)
            except (FileNotFoundError, nofollow.SymlinkRefused):
                continue
    return sources
