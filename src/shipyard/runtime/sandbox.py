"""The tenant sandbox every app process runs in: bubblewrap, then the app's own uid, then its command.

bubblewrap (started as root, with an empty environment) makes the namespaces (pid, ipc, uts, mount)
and a root file system holding only the system read-only, the app's interpreter, its slug read-only
with an ephemeral writable layer over the app directory, the platform CA's certificate, a private
/tmp and /dev/shm. `setpriv` (still root, still with an empty environment) drops to the app's uid with
no capabilities and `no_new_privs`. Only then does the app's environment exist: a bash running as the
app reads it from a file that only the sandbox sees, and runs the command.

So nothing the tenant controls (config vars, `.s2i/environment`, LD_PRELOAD) reaches a root process,
and the app's secrets are never on a command line the host can read.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shipyard.proc import BWRAP_ENV, SYSTEM_MOUNTS, crossable_parents, memfd_with, nul_separated, setpriv_args

LAUNCH_SCRIPT = "/run/shipyard/launch"
# Names a shell can export; anything else could not reach a Python app through bash anyway.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Jail:
    """What one sandboxed process may see, as plain values."""

    uid: int
    hostname: str
    cwd: Path
    read_only: tuple[Path, ...]  # bound at the same path (the slug, the venv, the interpreter, the CA cert)
    overlays: tuple[Path, ...]  # read-only underneath, writable on top, the writes gone when it exits


def bwrap_args(jail: Jail, system_args: Sequence[str], script_fd: int, block_fd: int | None = None) -> list[str]:
    """bubblewrap's options (passed through --args, so not on any command line).

    `block_fd`: bubblewrap sets up the sandbox, then waits for a byte on it before it runs anything of the
    app's, so the platform can move it into its cgroup meanwhile (see shell.spawn).
    """
    args = [*(["--block-fd", str(block_fd)] if block_fd is not None else []), "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--hostname", jail.hostname, "--clearenv", "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--tmpfs", "/dev/shm", "--perms", "1777", "--tmpfs", "/tmp", "--tmpfs", "/run",
            *system_args]
    made: set[PurePosixPath] = {*SYSTEM_MOUNTS, PurePosixPath("/run"), PurePosixPath("/tmp")}
    binds = [("--ro-bind", p) for p in jail.read_only] + [("--overlay", p) for p in jail.overlays]
    for kind, path in binds:
        args += crossable_parents(PurePosixPath(path), made)
        made.add(PurePosixPath(path))
        if kind == "--overlay":
            # The layer's top folder is bwrap's (root's): opened up so the app can create files in it; only
            # the app's own processes ever see it.
            args += ["--overlay-src", str(path), "--tmp-overlay", str(path), "--chmod", "0777", str(path)]
        else:
            args += ["--ro-bind", str(path), str(path)]
    args += ["--dir", str(PurePosixPath(LAUNCH_SCRIPT).parent), "--perms", "0444",
             "--ro-bind-data", str(script_fd), LAUNCH_SCRIPT, "--chdir", str(jail.cwd)]
    return args


def launch_script(env: Mapping[str, str]) -> str:
    """What the app's bash reads first: its environment (only the sandbox sees this file)."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items()
                   if _ENV_NAME.fullmatch(name) and "\0" not in value)


def app_command(command: str) -> list[str]:
    """bash as the app: its environment, then its command. `--`, so a command starting with `-` is a
    command; one bash, since bash 5.1+ execs the last simple command of a -c string itself."""
    return ["/bin/bash", "-c", "--", f". {LAUNCH_SCRIPT}\n{command}"]


@dataclass(frozen=True)
class Launch:
    """How to exec one sandboxed process: argv, its (empty) environment and the fds it inherits."""

    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...]  # closed here once the child has them
    inherited: tuple[int, ...] = ()  # passed too, but the caller's to close

    def close(self) -> None:
        for fd in self.pass_fds:
            os.close(fd)


def sandboxed_launch(bwrap: Path, system_args: Sequence[str], jail: Jail, env: Mapping[str, str],
                     command: str, block_fd: int | None = None) -> Launch:
    script_fd = memfd_with(launch_script(env).encode(), "launch")
    args_fd = memfd_with(nul_separated(bwrap_args(jail, system_args, script_fd, block_fd)), "bwrap-args")
    argv = [str(bwrap), "--args", str(args_fd), "--", *setpriv_args(jail.uid, jail.uid), *app_command(command)]
    return Launch(argv, dict(BWRAP_ENV), (args_fd, script_fd), (block_fd,) if block_fd is not None else ())


def unconfined_launch(env: Mapping[str, str], command: str) -> Launch:
    """Where no sandbox can be made (the platform does not run as root): a plain bash, as before."""
    return Launch(["/bin/bash", "-c", "--", command], dict(env), ())
