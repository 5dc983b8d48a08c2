"""Why did an instance not come up? A pure guess from its last log lines or its sockets, as a one-line fix."""

from __future__ import annotations

import re
from collections.abc import Sequence

DEFAULT_HINT = ("The web process must listen on the port in $PORT (on 0.0.0.0 or 127.0.0.1), e.g. "
                "`web: gunicorn --bind 0.0.0.0:$PORT app:app` in your Procfile. The previous release keeps serving.")

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'"),
     "Python could not import `{0}`: add the package that provides it to your dependencies "
     "(requirements.txt, pyproject.toml …) and push again."),
    (re.compile(r"KeyError: '?([A-Z][A-Z0-9_]+)'?"),
     "The app reads the environment variable {0}, which is not set: "
     "`shipyard config set <app> {0}=...` (or add the PostgreSQL add-on for DATABASE_URL)."),
    (re.compile(r"(?:Address already in use|Connection in use).*?(\d{2,5})?", re.IGNORECASE),
     "The port is already taken: the app probably binds a fixed port instead of $PORT. "
     "Bind `0.0.0.0:$PORT`, or set the app's fixed port with `shipyard apps set <app> --port N`."),
    (re.compile(r"Listening at: http://\[?::1\]?:|Running on http://localhost:(?!\$)", re.IGNORECASE),
     "The app listens on an address the edge doesn't reach (IPv6 localhost): bind 0.0.0.0:$PORT."),
    (re.compile(r"(ProgrammingError|UndefinedTable|no such table|relation \"\w+\" does not exist)", re.IGNORECASE),
     "The database schema is not what the code expects: run your migrations in the release phase "
     "(`release: flask db upgrade` or `release: python manage.py migrate` in the Procfile)."),
    (re.compile(r"(OperationalError|could not connect to server|Connection refused).*", re.IGNORECASE),
     "The app could not reach a service it needs (often the database): check DATABASE_URL with "
     "`shipyard config <app>`."),
]


# A Python exception's summary line ("ModuleNotFoundError: No module named 'x'"), after a log prefix if any.
_EXCEPTION = re.compile(r"(?:^|\s)((?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit)\b(?::.*)?)$")
# What a server prints when the app's own exception stopped it: not the cause.
_CONSEQUENCE = re.compile(r"HaltServer|SystemExit|Worker failed to boot")


def telling_error(lines: Sequence[str]) -> str | None:
    """The app's own exception among its last lines (gunicorn's master prints its shutdown after it)."""
    for line in reversed(lines):
        match = _EXCEPTION.search(line.strip())
        if match and not _CONSEQUENCE.search(line):
            return match.group(1)
    return None


def boot_hint(lines: Sequence[str]) -> str:
    """The fix for the most telling line, searching from the end; the generic $PORT advice otherwise."""
    for line in reversed(lines):
        for pattern, hint in _RULES:
            match = pattern.search(line)
            if match:
                return hint.format(*(g or "" for g in match.groups()))
    return DEFAULT_HINT


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_hint(port: int, listening: Sequence[tuple[str, int]]) -> str | None:
    """The fix when the app listens, but not where the edge connects (127.0.0.1:$PORT); None if it doesn't."""
    if not listening:
        return None
    if wrong_host := sorted(h for h, p in listening if p == port):
        return (f"The app listens on {address(wrong_host[0], port)}, an address the edge doesn't reach (it "
                "connects to 127.0.0.1:$PORT): bind 0.0.0.0:$PORT, e.g. `gunicorn --bind 0.0.0.0:$PORT app:app` "
                "or `uvicorn main:app --host 0.0.0.0 --port $PORT`.")
    found = ", ".join(address(h, p) for h, p in sorted(set(listening)))
    return (f"The app listens on {found}, not on $PORT ({port}): bind 0.0.0.0:$PORT, e.g. "
            "`web: gunicorn --bind 0.0.0.0:$PORT app:app` in the Procfile, or "
            "`app.run(host=\"0.0.0.0\", port=int(os.environ[\"PORT\"]))`. If the port can't change, tell "
            "Shipyard: `shipyard apps set <app> --port N`.")
