"""Why did an instance not come up, or a build step fail? Pure guesses from the last output lines (or an
instance's sockets), each as a one-line fix that names the real cause."""

from __future__ import annotations

import re
from collections.abc import Sequence

DEFAULT_HINT = ("The web process must listen on the port in $PORT (on 0.0.0.0 or 127.0.0.1), e.g. "
                "`web: gunicorn --bind 0.0.0.0:$PORT app:app` in your Procfile. The previous release keeps serving.")

Rule = tuple[re.Pattern[str], str]  # a line's pattern, and its fix with the pattern's groups as {0}, {1} …

# How bash (or dash's `sh: 1:`) names a command it could not run, e.g. `bash: line 2: ./run.sh: Permission denied`;
# the build's launcher says `./build.sh: Permission denied` with no prefix. Groups: the command, and its path
# without a leading ./ (what `git update-index` takes).
_SHELL = r"(?:^|\s)(?:/bin/)?(?:ba|da)?sh(?:: line \d+|: \d+)?:(?: exec:)? "
_COMMAND = r"((?:\./)?(\S+?))"
_NOT_EXECUTABLE = ("command not found: {0} is not executable (git keeps the mode it was committed with). Make it "
                   "executable: `git update-index --chmod=+x {1}`, commit and push again; or call it with bash: "
                   "`bash {1}`.")

# Causes a build step and a starting instance share, the most specific first (pkg_resources before any
# other missing module, a script's line endings before "No such file").
_SHARED: list[Rule] = [
    (re.compile(r"No module named '?pkg_resources'?"),
     "`pkg_resources` came with setuptools, which dropped it in version 81 (and uv's virtualenvs have no "
     "setuptools at all): add `setuptools<81` to requirements.txt, or upgrade the package that imports it "
     "(gunicorn 21+ no longer does). If it fails while a package is built from source, pin it for builds too: "
     "`setuptools<81` in a file build-constraints.txt and `shipyard config set <app> "
     "UV_BUILD_CONSTRAINT=build-constraints.txt`."),
    (re.compile(r"(?:\^M|\r|\\x0d|\\r)['’]?: (?:bad interpreter|No such file)"),
     "A script has Windows line endings (CRLF), so its `#!` line names a program that does not exist: convert "
     "it to LF (`dos2unix <script>`, or `git config core.autocrlf input` and commit it again) and push again."),
    (re.compile(_SHELL + _COMMAND + r": (\S+): bad interpreter"),
     "{0}'s first line (`#!{2}`) names an interpreter this machine does not have: use `#!/usr/bin/env bash` (or "
     "`#!/usr/bin/env python`), or call it through one: `bash {1}`."),
    (re.compile(_SHELL + _COMMAND + r":(?: cannot execute:)? Permission denied"), _NOT_EXECUTABLE),
    # The build's launcher names the path it was given, absolute for .s2i/bin/assemble: from the app's folder on.
    (re.compile(r"^(?:/\S*?/app/)?" + _COMMAND + r": Permission denied$"), _NOT_EXECUTABLE),
    (re.compile(_SHELL + r"((?:\./)?(\S*/\S+?)): No such file or directory"),
     "command not found: {0} is not among the app's files: is it committed (`git ls-files {1}`)? A relative path "
     "starts at the repository's root."),
    (re.compile(_SHELL + r"((\S+?)): (?:command )?not found"),
     "command not found: `{0}`. If it comes from a Python package (gunicorn, uvicorn, celery …), add that "
     "package to your dependencies (requirements.txt, pyproject.toml …); else check the command's spelling."),
    (re.compile(r"error: Failed to spawn: `?([\w.-]+)`?"),
     "command not found: `uv run {0}` found no `{0}` in the app's virtualenv. Add the package that provides it to "
     "your dependencies (`uv add {0}`): a build command's `uv sync` removes what the lock file lacks."),
    (re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'"),
     "Python could not import `{0}`: add the package that provides it to your dependencies "
     "(requirements.txt, pyproject.toml …) and push again."),
    (re.compile(r"KeyError: '?([A-Z][A-Z0-9_]+)'?"),
     "The app reads the environment variable {0}, which is not set: "
     "`shipyard config set <app> {0}=...` (or add the PostgreSQL add-on for DATABASE_URL)."),
]
_UNREACHABLE: Rule = (
    re.compile(r"(OperationalError|could not connect to server|Connection refused).*", re.IGNORECASE),
    "The app could not reach a service it needs (often the database): check DATABASE_URL with "
    "`shipyard config <app>`.")

_RULES: list[Rule] = [
    *_SHARED,
    (re.compile(r"(?:Address already in use|Connection in use).*?(\d{2,5})?", re.IGNORECASE),
     "The port is already taken: the app probably binds a fixed port instead of $PORT. "
     "Bind `0.0.0.0:$PORT`, or set the app's fixed port with `shipyard apps set <app> --port N`."),
    (re.compile(r"Listening at: http://\[?::1\]?:|Running on http://localhost:(?!\$)", re.IGNORECASE),
     "The app listens on an address the edge doesn't reach (IPv6 localhost): bind 0.0.0.0:$PORT."),
    (re.compile(r"(ProgrammingError|UndefinedTable|no such table|relation \"\w+\" does not exist)", re.IGNORECASE),
     "The database schema is not what the code expects: run your migrations in the release phase "
     "(`release: flask db upgrade` or `release: python manage.py migrate` in the Procfile)."),
    _UNREACHABLE,
]
# A build may run migrations itself (Render's build.sh does), so "run them in the release phase" is no fix there.
_BUILD_RULES: list[Rule] = [*_SHARED, _UNREACHABLE]

# What a program prints when a write found the disk full: errno 28 as C, Python (`[Errno 28]`), Rust (uv:
# `os error 28`) and the shell say it.
_DISK_FULL = re.compile(r"No space left on device|\bENOSPC\b|\(os error 28\)|\[Errno 28\]")


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


def first_match(lines: Sequence[str], rules: Sequence[Rule]) -> str | None:
    """The fix for the most telling line, searching from the end (the last error is the one that stopped it)."""
    for line in reversed(lines):
        for pattern, hint in rules:
            match = pattern.search(line)
            if match:
                return hint.format(*(g or "" for g in match.groups()))
    return None


def boot_hint(lines: Sequence[str]) -> str:
    """The fix for an instance that did not come up; the generic $PORT advice when no line tells more."""
    return first_match(lines, _RULES) or DEFAULT_HINT


def build_hint(lines: Sequence[str]) -> str | None:
    """The fix for a build step that failed, when its output names a known cause; None otherwise."""
    return first_match(lines, _BUILD_RULES)


def disk_full(lines: Sequence[str]) -> bool:
    """Whether a failed step's output says the disk was full: then nothing in the app is to blame."""
    return any(_DISK_FULL.search(line) for line in lines)


def disk_full_error(step: str, free: str | None) -> tuple[str, str]:
    """(message, hint) for a build step stopped by a full disk; free: what the data directory's disk has left."""
    where = f": the data directory's disk has {free}" if free else ""
    return (f"The disk is full: {step} stopped with \"No space left on device\"{where}.",
            "Nothing is wrong with the app or its requirements, and the running release keeps serving. Free space "
            "on that disk (old database backups in the data directory's backups/, other files), or keep fewer old "
            "slugs (start `shipyard up` with SHIPYARD_RELEASES_KEPT=5), then push again.")


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
