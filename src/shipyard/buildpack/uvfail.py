"""What uv's error output says went wrong, as a value: which package, which kind of failure (pure functions).

The texts these patterns match were captured from uv 0.13 (tests/unit/uv_errors/); uv words a failure
the same way whether it resolves (`pip compile`), installs (`pip install`) or syncs a lock (`sync`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Kinds that depend on the Python the build uses: another Python (or another release of the package) may fix them.
NO_WHEEL = "no-wheel"  # only a source distribution fits this Python, and building was not allowed
REQUIRES_PYTHON = "requires-python"  # the package (or the project) declares Pythons this one is not
BUILD_FAILED = "build-failed"  # uv built the package from source (no wheel for this Python) and that failed
PYTHON_KINDS = (NO_WHEEL, REQUIRES_PYTHON, BUILD_FAILED)
# Kinds that no Python fixes: the requirement itself is wrong.
NOT_FOUND = "not-found"
NO_VERSION = "no-version"
OTHER = "other"
# `--offline` (fitting.py asks the cache first) and the cache lacks what the answer needs.
NEEDS_NETWORK = "needs-network"

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (NEEDS_NETWORK, re.compile(r"because the network was disabled|was not found in the cache|needs to be downloaded "
                               r"from a registry|Network connectivity is disabled")),
    (BUILD_FAILED, re.compile(rf"Failed to (?:download and )?build `(?P<name>{_NAME})"
                              r"(?:==(?P<version>[^`\s]+)| @ [^`]+)`")),
    (NO_WHEEL, re.compile(rf"Because (?P<name>{_NAME})==(?P<version>\S+) has no "
                          r"(?:usable wheels|wheels with a matching)")),
    (NO_WHEEL, re.compile(rf"Distribution `(?P<name>{_NAME})==(?P<version>\S+) @ [^`]*` can't be installed because it "
                          r"(?:is marked as `--no-build` but has no binary distribution|doesn't have a source "
                          r"distribution or wheel for the current platform)")),
    (REQUIRES_PYTHON, re.compile(rf"does not satisfy Python(?P<detail>\S+) and (?P<name>{_NAME})"
                                 r"(?:==(?P<version>[^\s,]+)|\S*) depends on Python")),
    (REQUIRES_PYTHON, re.compile(r"(?:is incompatible with|is not compatible with) the (?:project's|locked) Python "
                                 r"requirement: `(?P<detail>[^`]+)`")),
    (NOT_FOUND, re.compile(rf"Because (?P<name>{_NAME}) was not found in the package registry")),
    (NO_VERSION, re.compile(rf"Because there is no version of (?P<name>{_NAME})==(?P<version>\S+)")),
)
# Modules only Python 2 had: a package whose build trips on one of these was written for Python 2.
_PYTHON2 = re.compile(r"No module named '(ConfigParser|urllib2|StringIO|cStringIO|cPickle|Queue|HTMLParser|httplib|"
                      r"urlparse|commands|__builtin__)'|Missing parentheses in call to 'print'|print \"")


@dataclass(frozen=True)
class UvFailure:
    kind: str
    package: str = ""  # as uv prints it (normalised, lower case)
    version: str = ""
    detail: str = ""  # the Python requirement, the build's telling error line, or uv's own summary

    @property
    def python_related(self) -> bool:
        return self.kind in PYTHON_KINDS

    @property
    def settled(self) -> bool:
        """A fact about one release's files or metadata, which the index does not change once published: a
        cached answer is as good as a fresh one. (Any other failure may come from a stale cache.)"""
        return self.kind in (NO_WHEEL, REQUIRES_PYTHON) and bool(self.version)

    @property
    def pinned(self) -> str:
        return f"{self.package}=={self.version}" if self.version else self.package

    @property
    def python2_only(self) -> bool:
        return bool(_PYTHON2.search(self.detail))


def clean(line: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", line)


def parse_uv_failure(lines: list[str]) -> UvFailure:
    """The first failure uv reports (it stops at the first), or OTHER with uv's own summary."""
    text = [clean(line) for line in lines]
    for kind, pattern in _PATTERNS:
        for line in text:
            if match := pattern.search(line):
                found = match.groupdict()
                detail = (build_error(text) if kind == BUILD_FAILED else summarize_uv_failure(text)
                          if kind in (NOT_FOUND, NO_VERSION) else found.get("detail") or "")
                return UvFailure(kind, (found.get("name") or "").lower(), found.get("version") or "", detail)
    return UvFailure(OTHER, detail=summarize_uv_failure(text))


def build_error(lines: list[str]) -> str:
    """The line of a failed build that says why, in order of how telling it is: a missing module, the
    compiler's first error, a setup script's `Error:`, any exception; else the build's last line."""
    output = [line.strip() for line in lines if line.startswith("   ")]  # the build's own output is indented
    for pattern in (r"^(ModuleNotFoundError|ImportError): ", r"\berror: (?!Command ')", r"^Error: ",
                    r"^\w*(Error|Exception): "):
        for line in output:
            if re.search(pattern, line):
                return shorten(re.sub(r"^(\S+:\d+:\d+: )?(error: )?", "", line), 160)
    tail = next((line for line in reversed(output) if line and not line.startswith("[")), "")
    return shorten(tail, 160)


def summarize_uv_failure(lines: list[str]) -> str:
    """One line naming what failed, from uv's output."""
    text = [re.sub(r"^[\s×╰─▶│]+", "", line).strip() for line in lines]
    for i, line in enumerate(lines):
        if "╰─▶" in line or line.lstrip().startswith("cause:"):
            return shorten(text[i].removeprefix("cause:").strip())
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("error:", "×")):
            following = next((t for t in text[i + 1:] if t), "")
            base = text[i].removeprefix("error:").strip()
            return shorten(f"{base} {following}" if base.endswith(":") else base)
    return shorten(next((t for t in reversed(text) if t), "uv failed without saying why"))


def shorten(text: str, limit: int = 220) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pins(lines: list[str]) -> dict[str, str]:
    """name → version of what a successful `uv pip compile` (`name==1.0`) or `uv sync --dry-run` (` + name==1.0`)
    would install."""
    found = {}
    for line in lines:
        if match := re.match(rf"^\s*(?:\+\s+)?({_NAME})==([^\s;#]+)", clean(line)):
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found
