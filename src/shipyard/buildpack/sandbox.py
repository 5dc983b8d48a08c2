"""The build sandbox: bubblewrap with only what a build needs, run as the app's unprivileged build uid.

A build runs the app's own code (setup.py, collectstatic, build commands), so it
sees the system's programs read-only, its interpreter, uv (the file alone, so that
build scripts can call it from PATH) and the platform's inputs for this build
(read-only), and as writable only its slug, its app's virtualenvs folder, its app's
uv cache and a private /tmp — not the platform's data directory, its token, or
other apps.

bwrap and setpriv run as root (bwrap makes the mounts, setpriv drops to the build
uid), so neither gets any of the build's variables: bwrap starts with a fixed
environment and reads its arguments from a memfd (`--args`), `--clearenv` empties
setpriv's, and the build's variables reach the build's first process through a
read-only file inside the sandbox, read by a few lines of Python that already run
as the build uid and exec the step with exactly that environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shipyard import landlock
from shipyard.proc import (BWRAP_ENV, SYSTEM_MOUNTS, bwrap_system_args, crossable_parents, find_binary, find_bwrap,
                           memfd_with, nul_separated, setpriv_args)
from shipyard.runtime.sandbox import Launch
ENV_FILE = "/run/shipyard/env"
# Runs as the build uid with an empty environment: reads ENV_FILE (NUL-separated K=V) and execs the step.
# Python 3.6 syntax: it runs on the app's interpreter, the one binary every build is sure to see.
# umask 022: the platform's own 077 would make the venv unreadable to the app's next build once frozen.
TRAMPOLINE = """import os, sys
os.umask(0o022)
with open(sys.argv[1], "rb") as f:
    env = dict(i.split(b"=", 1) for i in f.read().split(b"\\0") if b"=" in i)
try:
    os.execvpe(sys.argv[2], sys.argv[2:], env)
except OSError as e:
    sys.stderr.write("%s: %s\\n" % (sys.argv[2], e.strerror))
    sys.exit(127)
"""


@dataclass(frozen=True)
class Sandbox:
    bwrap: Path
    uid: int
    gid: int
    python: Path  # the app's interpreter: runs the trampoline
    read_only: tuple[Path, ...]
    writable: tuple[Path, ...]
    scoped: bool = False  # Landlock keeps abstract unix sockets and signals inside the sandbox

    def mount_args(self) -> list[str]:
        # --unshare-pid: every process of the step dies with its pid 1 when the step ends, so none is
        # left to race the platform's freeze. --new-session: no TIOCSTI into the platform's terminal.
        # /tmp: the build's own, writable (1777: bwrap's default 0755 root's left pip, setup.py and friends
        # writing their temporary files into the app's folder, or failing).
        args = ["--die-with-parent", "--new-session", "--clearenv", "--unshare-pid", "--unshare-ipc",
                "--unshare-uts", "--unshare-cgroup-try", "--proc", "/proc", "--dev", "/dev",
                "--perms", "1777", "--tmpfs", "/tmp", *bwrap_system_args()]
        made: set[PurePosixPath] = set(SYSTEM_MOUNTS)
        binds = [("--ro-bind", p) for p in self.read_only] + [("--bind", p) for p in self.writable]
        for flag, path in binds:
            args += [*crossable_parents(PurePosixPath(path), made), flag, str(path), str(path)]
        return args

    def launch(self, command: Sequence[str], env: Mapping[str, str], cwd: Path) -> Launch:
        """The bwrap invocation running `command` in cwd as the build uid with exactly `env`."""
        env_fd = memfd_with(nul_separated([f"{k}={v}" for k, v in env.items()]), "build-env")
        try:
            args = [*self.mount_args(), "--perms", "0755", "--dir", str(PurePosixPath(ENV_FILE).parent),
                    "--perms", "0444", "--ro-bind-data", str(env_fd), ENV_FILE, "--chdir", str(cwd)]
            args_fd = memfd_with(nul_separated(args), "bwrap-args")
        except BaseException:
            os.close(env_fd)
            raise
        argv = [str(self.bwrap), "--args", str(args_fd), *setpriv_args(self.uid, self.gid),
                str(self.python), "-I", "-S", "-c", TRAMPOLINE, ENV_FILE, *command]
        return Launch(argv, dict(BWRAP_ENV), (args_fd, env_fd))


def build_sandbox(uid: int, interpreter: Path, read_only: Sequence[Path], writable: Sequence[Path]) -> Sandbox | None:
    """A sandbox for one build, or None where one cannot be made (not root: bubblewrap needs it here)."""
    if os.geteuid() != 0:
        return None
    python = interpreter.resolve()
    system = tuple(p for p in (python.parent.parent, find_binary("uv", "uv").resolve())
                   if not str(p).startswith("/usr/"))
    return Sandbox(find_bwrap(), uid, uid, python, (*system, *read_only), tuple(writable),
                   scoped=landlock.abi_version() >= landlock.SCOPES_ABI)
