"""A module written to be run as a script (`python main.py`) that holds a web app object: gunicorn can serve
that object instead of the development server the script starts. Pure functions over source text.

Why it matters: `app.run(debug=True)` runs Werkzeug's debugger, whose console runs any Python a visitor
types (remote code execution), and the development server handles one request at a time.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# The constructors of app objects a production server can serve, and which kind of server that is.
FRAMEWORKS = {"Flask": "wsgi", "FastAPI": "asgi", "Starlette": "asgi", "Quart": "asgi", "Litestar": "asgi"}
_RUN_METHODS = ("run", "run_server")
_IMPORTS = re.compile(r"^\s*(?:from|import)\s+(flask|fastapi|starlette|quart|litestar)\b", re.MULTILINE)
# A factory's product (`app = create_app()`) counts; other objects named app (`app = dash.Dash()`, which is no
# WSGI app itself) do not.
_FACTORY = re.compile(r"(create|make|build|get)_?app", re.IGNORECASE)
_IMPORTED = {"flask": "Flask", "fastapi": "FastAPI", "starlette": "Starlette", "quart": "Quart",
             "litestar": "Litestar"}


@dataclass(frozen=True)
class ScriptApp:
    name: str  # the module-level variable holding the app, e.g. `app` or `server`
    framework: str  # Flask, FastAPI …
    kind: str  # wsgi | asgi
    runs: str  # what the script calls to serve it, e.g. `app.run()`, `uvicorn.run()` ("" if nothing)
    debug: bool  # that call turns the debugger on (debug=…, not False)
    setup: bool  # the `if __name__ == "__main__":` block does more than serve (gunicorn will not run it)


def script_app(source: str) -> ScriptApp | None:
    """The app object a script serves, or None: no known framework's object, or a server started at import
    (outside the `__main__` block), which gunicorn importing the module would start too."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    objects = _app_objects(tree, source)
    if not objects or any(_is_run(call, objects) for call in _calls_at_import(tree.body)):
        return None
    main = [s for node in tree.body if _is_main_guard(node) for s in node.body]  # type: ignore[attr-defined]
    runs = [call for call in _calls_in(main) if _is_run(call, objects)]
    if any(_other_server(call, objects) for call in _calls_in(main) if not _is_run(call, objects)):
        return None  # e.g. socketio.run(app), waitress' serve(app): the script's own server may be needed
    served = next((_served(call) for call in runs if _served(call) in objects), None)
    name = served or next((n for n in ("app", "application") if n in objects), next(iter(objects)))
    run = runs[0] if runs else None
    return ScriptApp(name=name, framework=objects[name], kind=FRAMEWORKS[objects[name]],
                     runs=_describe(run) if run else "", debug=run is not None and _debug(run),
                     setup=any(not _harmless(s, objects) for s in main))


def _app_objects(tree: ast.Module, source: str) -> dict[str, str]:
    """Module-level names bound to an app object: `x = Flask(__name__)`, or `app = create_app()` in a module
    that imports the framework (a factory's product, named as the framework's documentation names it)."""
    found: dict[str, str] = {}
    imported = [_IMPORTED[m] for m in _IMPORTS.findall(source)]
    for node in tree.body:
        target, value = _assignment(node)
        if target is None or not isinstance(value, ast.Call):
            continue
        if (framework := _constructor(value.func)) is not None:
            found[target] = framework
        elif target in ("app", "application") and imported and _FACTORY.fullmatch(_callee(value.func)):
            found[target] = imported[0]
    return found


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    return None, None


def _callee(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _constructor(func: ast.expr) -> str | None:
    return _callee(func) if _callee(func) in FRAMEWORKS else None


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare) or len(node.test.comparators) != 1:
        return False
    sides = [node.test.left, node.test.comparators[0]]
    return (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def _calls_at_import(body: list[ast.stmt]) -> list[ast.Call]:
    """Calls that run when the module is imported: top-level code, outside functions, classes and the
    `__main__` block (also inside a top-level `if`, `try` or `with`)."""
    return _calls_in([s for s in body if not _is_main_guard(s)])


def _calls_in(statements: list[ast.stmt]) -> list[ast.Call]:
    calls: list[ast.Call] = []
    pending = list(statements)
    while pending:
        node = pending.pop(0)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call):
            calls.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return calls


def _is_run(call: ast.Call, objects: dict[str, str]) -> bool:
    """`app.run(…)`, `create_app().run(…)`, `uvicorn.run(…)`: the script serving the app itself."""
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr not in _RUN_METHODS:
        return False
    owner = func.value
    return ((isinstance(owner, ast.Name) and (owner.id in objects or owner.id == "uvicorn"))
            or isinstance(owner, ast.Call))


def _other_server(call: ast.Call, objects: dict[str, str]) -> bool:
    """A call that may serve the app some other way: another object's `run()`, or the app handed over."""
    func = call.func
    return ((isinstance(func, ast.Attribute) and func.attr in _RUN_METHODS)
            or any(isinstance(a, ast.Name) and a.id in objects for a in call.args))


def _served(call: ast.Call) -> str | None:
    """The name of the object a run call serves: `app` in `app.run()` and in `uvicorn.run(app)`."""
    func = call.func
    assert isinstance(func, ast.Attribute)
    if isinstance(func.value, ast.Name) and func.value.id != "uvicorn":
        return func.value.id
    first = call.args[0] if call.args else None
    return first.id if isinstance(first, ast.Name) else None


def _describe(call: ast.Call) -> str:
    func = call.func
    assert isinstance(func, ast.Attribute)
    owner = func.value.id if isinstance(func.value, ast.Name) else "…"
    return f"{owner}.{func.attr}()"


def _debug(call: ast.Call) -> bool:
    return any(k.arg == "debug" and not (isinstance(k.value, ast.Constant) and not k.value.value)
               for k in call.keywords)


def _harmless(node: ast.stmt, objects: dict[str, str]) -> bool:
    """What a `__main__` block may hold without gunicorn missing anything: the run call, reading the port or
    other settings into names, imports, printing."""
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.Import, ast.ImportFrom, ast.Pass)):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        return _is_run(node.value, objects) or (isinstance(func, ast.Name) and func.id == "print")
    return False
