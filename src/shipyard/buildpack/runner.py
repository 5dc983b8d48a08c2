"""Running a build step's command: its output streamed to the build log, in the sandbox when there is one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from shipyard.buildpack.sandbox import Sandbox
from shipyard.errors import BuildError, OutOfSpace
from shipyard.proc import die_with_parent
from shipyard.runtime.cgroups import Cgroup
from shipyard.runtime.diagnose import build_hint, disk_full, disk_full_error
from shipyard.runtime.disk import disk_space
from shipyard.runtime.limits import BUILD
from shipyard.runtime.shell import child_setup

Log = Callable[[str], Awaitable[None]]
INDENT = "       "


async def run_logged(argv: list[str], env: Mapping[str, str], cwd: Path, log: Log,
                     pass_fds: Sequence[int] = (), preexec: Callable[[], None] = die_with_parent) -> tuple[int, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=dict(env), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True, preexec_fn=preexec, pass_fds=pass_fds)
    assert proc.stdout is not None
    lines: list[str] = []
    async for raw in proc.stdout:
        line = raw.decode("utf-8", errors="replace").rstrip()
        lines.append(line)
        await log(INDENT + line)
    return await proc.wait(), lines


class Runner:
    def __init__(self, sandbox: Sandbox | None = None, cgroup: Cgroup | None = None, disk: Path | None = None) -> None:
        self.sandbox = sandbox
        self.cgroup = cgroup  # the build's limits (runtime.limits.BUILD), shared by its steps
        # A platform-owned folder on the disk the build writes to (never one the build controls: its free
        # space is read through it), for what a full disk says; None: the message goes without the figure.
        self.disk = disk
        self.ran = False  # whether any process ran as the build uid (a code-only redeploy may run none)

    def out_of_memory(self) -> bool:
        return self.cgroup is not None and self.cgroup.oom_kills() > 0

    def failure(self, step: str, message: str, lines: Sequence[str], hint: str | None = None) -> BuildError:
        """The error for a step that failed, blaming what really stopped it: the build's memory limit, a full
        disk (not the app's requirements), a cause its output names (pkg_resources, a script that is not
        executable …); otherwise `message` with the step's own `hint`."""
        if self.out_of_memory():
            return BuildError(f"{step} ran out of memory: a build may use {BUILD.memory_mb} MB and was stopped "
                              "there.", hint="Install fewer or lighter packages in the build, or move the heavy "
                                             "work to the release command or a worker.")
        if disk_full(lines):
            free = disk_space(self.disk).describe() if self.disk is not None else None
            return OutOfSpace(*disk_full_error(step, free))
        return BuildError(message, hint=build_hint(lines) or hint)

    async def __call__(self, argv: list[str], env: Mapping[str, str], cwd: Path, log: Log) -> tuple[int, list[str]]:
        if self.sandbox is None:
            return await run_logged(argv, env, cwd, log)
        # No passwd entry exists for the build user; tools that ask for a name or a home get these.
        # The app's uv cache and its venvs are separate bind mounts, and link() never crosses
        # mounts: uv copies from its cache either way, so say so rather than warn in every build log.
        # Its /tmp is private (a tmpfs of its own, in the build's memory limit): TMPDIR points there whatever
        # the app's config says.
        env = {**env, "HOME": "/tmp", "TMPDIR": "/tmp", "USER": "shipyard-build", "LOGNAME": "shipyard-build",
               "UV_LINK_MODE": "copy"}
        launch = self.sandbox.launch(argv, env, cwd)
        self.ran = True
        try:
            # bwrap's own working directory is "/": cwd is a build-writable path the host must not follow.
            return await run_logged(launch.argv, launch.env, Path("/"), log, pass_fds=launch.pass_fds,
                                    preexec=child_setup(self.cgroup, self.sandbox.scoped))
        finally:
            launch.close()
