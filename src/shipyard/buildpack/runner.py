"""Running a build step's command: its output streamed to the build log, in the sandbox when there is one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from shipyard.buildpack.sandbox import Sandbox
from shipyard.proc import die_with_parent
from shipyard.runtime.cgroups import Cgroup
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
    def __init__(self, sandbox: Sandbox | None = None, cgroup: Cgroup | None = None) -> None:
        self.sandbox = sandbox
        self.cgroup = cgroup  # the build's limits (runtime.limits.BUILD), shared by its steps
        self.ran = False  # whether any process ran as the build uid (a code-only redeploy may run none)

    def out_of_memory(self) -> bool:
        return self.cgroup is not None and self.cgroup.oom_kills() > 0

    async def __call__(self, argv: list[str], env: Mapping[str, str], cwd: Path, log: Log) -> tuple[int, list[str]]:
        if self.sandbox is None:
            return await run_logged(argv, env, cwd, log)
        # No passwd entry exists for the build user; tools that ask for a name or a home get these.
        # The app's uv cache and its venvs are separate bind mounts, and link() never crosses
        # mounts: uv copies from its cache either way, so say so rather than warn in every build log.
        env = {**env, "HOME": "/tmp", "USER": "shipyard-build", "LOGNAME": "shipyard-build", "UV_LINK_MODE": "copy"}
        launch = self.sandbox.launch(argv, env, cwd)
        self.ran = True
        try:
            # bwrap's own working directory is "/": cwd is a build-writable path the host must not follow.
            return await run_logged(launch.argv, launch.env, Path("/"), log, pass_fds=launch.pass_fds,
                                    preexec=child_setup(self.cgroup, self.sandbox.scoped))
        finally:
            launch.close()
