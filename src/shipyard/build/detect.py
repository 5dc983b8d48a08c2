"""Detection: from a repository's files to how to run it. Pure functions over file contents."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass

from shipyard.errors import BuildError

_PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+)\s*:\s*(.+)$")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
FILES_OF_INTEREST = ("Procfile", "wsgi.py", "app.py", "requirements.txt")


@dataclass(frozen=True)
class StartCommand:
    command: str
    rule: str


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


def resolve_start_command(files: Mapping[str, str], env: Mapping[str, str]) -> StartCommand:
    """design.md's order, first match wins: APP_RUN → Procfile web → wsgi.py → app.py."""
    if env.get("APP_RUN", "").strip():
        return StartCommand(env["APP_RUN"].strip(), "APP_RUN")
    if "Procfile" in files:
        web = parse_procfile(files["Procfile"]).get("web")
        if web:
            return StartCommand(web, "Procfile")
    for module in ("wsgi", "app"):
        source = files.get(f"{module}.py")
        if source is None:
            continue
        name = wsgi_callable(source)
        if name:
            return StartCommand(f"gunicorn --bind 127.0.0.1:$PORT {module}:{name}", f"{module}.py")
        if module == "app":
            return StartCommand("python app.py", "app.py")
    raise BuildError(
        "Don't know how to run your application.",
        hint="Tell Shipyard how, in one of these ways:\n"
             "  - set APP_RUN: `shipyard config set <app> APP_RUN=\"gunicorn myapp:app\"`\n"
             "  - add a Procfile with a `web:` line, e.g. `web: gunicorn myapp:app`\n"
             "  - add a wsgi.py that exposes `application` (or `app`)")


def process_types(files: Mapping[str, str], start: StartCommand) -> dict[str, str]:
    types = parse_procfile(files["Procfile"]) if "Procfile" in files else {}
    types["web"] = start.command
    return types


def needs_gunicorn(requirements_text: str) -> bool:
    for line in requirements_text.splitlines():
        line = line.split("#", 1)[0]
        match = _REQUIREMENT_NAME.match(line)
        if match and match.group(1).lower() == "gunicorn":
            return False
    return True
