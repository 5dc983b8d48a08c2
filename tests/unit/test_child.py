"""App processes started from a thread of their own (runtime/child.py): exit codes, output, failures to start,
and a stop that gives a sandboxed app time to finish (bubblewrap itself is spared the SIGTERM)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading

import pytest

from shipyard.proc import find_bwrap
from shipyard.runtime.child import start_child

GRACEFUL = 'trap "echo got term; sleep 0.5; echo done; exit 0" TERM; echo ready; sleep 30 & wait'


def bwrap(command: str) -> list[str]:
    return [str(find_bwrap()), "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-pid",
            "--proc", "/proc", "bash", "-c", command]


async def started(argv: list[str], sandboxed: bool = False):  # type: ignore[no-untyped-def]
    return await start_child(argv, cwd="/", env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, sandboxed=sandboxed)


def test_output_and_exit_code_come_back_and_the_waiting_thread_ends() -> None:
    before = threading.active_count()

    async def run() -> tuple[bytes, int, int | None]:
        child = await started(["bash", "-c", "echo hello; exit 3"])
        assert child.stdout is not None
        out = await child.stdout.read()
        return out, await child.wait(), child.returncode
    assert asyncio.run(run()) == (b"hello\n", 3, 3)
    assert threading.active_count() == before


def test_a_command_that_cannot_be_started_raises_in_the_caller() -> None:
    with pytest.raises(FileNotFoundError):
        asyncio.run(started(["/nonexistent/program"]))


@pytest.mark.skipif(os.geteuid() != 0, reason="bubblewrap's sandbox here needs root")
def test_a_stopped_sandbox_gets_its_grace_to_finish_instead_of_dying_with_bubblewrap() -> None:
    async def run(sandboxed: bool) -> tuple[bytes, int | None]:
        child = await started(bwrap(GRACEFUL), sandboxed=sandboxed)
        assert child.stdout is not None
        assert await child.stdout.readline() == b"ready\n"
        await asyncio.sleep(0.2)  # bash is in its `wait`
        code = await child.stop(grace=5)
        return await child.stdout.read(), code
    assert asyncio.run(run(sandboxed=True)) == (b"got term\ndone\n", 0)
    # What a SIGTERM to the whole group did: bubblewrap died at once, and the app with it, mid-cleanup.
    out, code = asyncio.run(run(sandboxed=False))
    assert b"done" not in out and code == -15
