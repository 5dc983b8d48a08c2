"""The build sandbox: bwrap and setpriv (root) never get the build's variables; the build has no privileges."""

import asyncio
import os
import sys
from pathlib import Path

import pytest

from shipyard.buildpack.runner import Runner
from shipyard.buildpack.sandbox import ENV_FILE, build_sandbox
from shipyard.proc import BWRAP_ENV

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="bubblewrap runs builds as root here")
BUILD_UID = 399_990


def read_fd(fd: int) -> bytes:
    return os.pread(fd, 1 << 20, 0)


@needs_root
def test_launch_keeps_the_build_env_out_of_root_processes(tmp_path: Path) -> None:
    sandbox = build_sandbox(BUILD_UID, Path(sys.executable), [], [tmp_path])
    assert sandbox is not None
    launch = sandbox.launch(["true"], {"LD_PRELOAD": "/evil.so", "SECRET": "s3cr3t"}, tmp_path)
    try:
        assert launch.env == BWRAP_ENV
        assert not any("s3cr3t" in a or "evil" in a for a in launch.argv)  # not in bwrap's /proc/PID/cmdline
        args_fd, env_fd = launch.pass_fds
        assert launch.argv[1:3] == ["--args", str(args_fd)]
        bwrap_args = read_fd(args_fd).split(b"\0")
        assert b"--clearenv" in bwrap_args and b"--setenv" not in bwrap_args and b"s3cr3t" not in b"".join(bwrap_args)
        assert b"SECRET=s3cr3t" in read_fd(env_fd).split(b"\0")
        setpriv = launch.argv[3:launch.argv.index("--", 3)]
        assert {"--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--clear-groups"} <= set(setpriv)
    finally:
        launch.close()


@needs_root
def test_a_build_step_runs_unprivileged_with_exactly_its_env(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    os.chown(work, BUILD_UID, BUILD_UID)
    sandbox = build_sandbox(BUILD_UID, Path(sys.executable), [], [work])
    lines: list[str] = []

    async def log(line: str) -> None:
        lines.append(line.strip())

    script = ("grep -E '^(Uid|NoNewPrivs|CapEff|CapBnd|CapAmb):' /proc/self/status; env | sort; "
              f"ls {ENV_FILE}; touch made; umask")
    code, _ = asyncio.run(Runner(sandbox)(["/bin/sh", "-c", script], {"PATH": "/usr/bin:/bin", "K": "a b=c"},
                                          work, log))
    assert code == 0, lines
    status = {k: v.strip() for k, _, v in (line.partition(":") for line in lines if ":" in line and "\t" in line)}
    assert status["Uid"].split() == [str(BUILD_UID)] * 4
    assert status["NoNewPrivs"] == "1"
    assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == int(status["CapAmb"], 16) == 0
    assert "K=a b=c" in lines and "HOME=/tmp" in lines
    assert not any(line.startswith("LD_") for line in lines)
    assert "0022" in lines
    assert (work / "made").stat().st_uid == BUILD_UID
