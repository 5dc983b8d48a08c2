"""The build sandbox: bubblewrap with only what a build needs, run as an unprivileged user.

A build runs the app's own code (setup.py, collectstatic, build commands), so it
sees the system's programs read-only, its interpreter, uv, and as writable only
its slug, its app's virtualenvs and the uv cache — not the platform's data
directory, its token, or other apps.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shipyard.proc import bwrap_system_args, find_binary, find_bwrap, setpriv_args

SYSTEM_BINDS = ("/usr", "/etc")  # bound by bwrap_system_args(): no parent dirs to make below them


def ancestors(path: PurePosixPath) -> list[PurePosixPath]:
    return list(reversed(path.parents))[1:]  # without "/"


@dataclass(frozen=True)
class Sandbox:
    bwrap: Path
    uid: int
    gid: int
    read_only: tuple[Path, ...]
    writable: tuple[Path, ...]

    def argv(self, command: Sequence[str], cwd: Path) -> list[str]:
        args = [str(self.bwrap), "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                *bwrap_system_args()]
        made: set[PurePosixPath] = {PurePosixPath(p) for p in SYSTEM_BINDS}
        binds = [("--ro-bind", p) for p in self.read_only] + [("--bind", p) for p in self.writable]
        for flag, path in binds:
            # bwrap makes missing parents 0700, which the unprivileged user could not cross.
            for parent in ancestors(PurePosixPath(path)):
                if parent not in made and not any(parent.is_relative_to(s) for s in SYSTEM_BINDS):
                    args += ["--perms", "0755", "--dir", str(parent)]
                    made.add(parent)
            args += [flag, str(path), str(path)]
        return [*args, "--chdir", str(cwd), "--", *setpriv_args(self.uid, self.gid), *command]

    def give(self, *paths: Path) -> None:
        """Hand the build's writable places to the build user (the cache only when it is not yet theirs)."""
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
            if path.stat().st_uid == self.uid:
                continue
            os.chown(path, self.uid, self.gid)
            for root, dirs, files in os.walk(path):
                for name in dirs + files:
                    os.chown(os.path.join(root, name), self.uid, self.gid, follow_symlinks=False)


def build_sandbox(uid: int, interpreter: Path, writable: Sequence[Path]) -> Sandbox | None:
    """A sandbox for one build, or None where one cannot be made (not root: bubblewrap needs it here)."""
    if os.geteuid() != 0:
        return None
    prefix = interpreter.resolve().parent.parent
    read_only = tuple(p for p in (prefix, find_binary("uv", "uv").resolve()) if not str(p).startswith("/usr/"))
    return Sandbox(find_bwrap(), uid, uid, read_only, tuple(writable))

