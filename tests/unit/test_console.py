"""The interactive one-off process on a real pty, and the CLI's console address."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shipyard.cli.client import Target
from shipyard.cli.console import console_url
from shipyard.runtime.confinement import Confinement
from shipyard.runtime.console import Console
from shipyard.runtime.spec import InstanceSpec


def spec(command: str, tmp_path: Path) -> InstanceSpec:
    return InstanceSpec(app="todo", release=1, process_type="run", index=2, command=command, cwd=tmp_path,
                        env={"PATH": "/usr/bin:/bin"})


UNCONFINED = Confinement(bwrap=None, cgroups=None, layers=[])


def test_a_process_on_a_pty_reads_keystrokes_and_sees_its_size(tmp_path: Path) -> None:
    async def scenario() -> tuple[bytes, int]:
        console = await Console.start(spec('stty size; [ -t 0 ] && echo "tty $SHIPYARD_PROCESS ${DYNO-no-dyno} $TERM"; read line; '
                                           'echo "got:$line"; exit 4', tmp_path), UNCONFINED, columns=90, rows=30, term="vt100")
        await console.write(b"hello\n")
        output = b""
        while chunk := await console.read():
            output += chunk
        code = await console.wait()
        await console.close()
        return output, code

    output, code = asyncio.run(scenario())
    assert code == 4
    assert b"30 90" in output and b"tty run.2 no-dyno vt100" in output and b"got:hello" in output


def test_closing_stops_a_process_still_running(tmp_path: Path) -> None:
    async def scenario() -> int:
        console = await Console.start(spec("sleep 600", tmp_path), UNCONFINED, columns=80, rows=24, term="")
        console.resize(100, 50)
        await console.close()
        return await console.wait()

    assert asyncio.run(scenario()) == 128 + 15  # SIGTERM, reported as a shell does


def test_console_url_follows_the_api_scheme() -> None:
    plain = console_url(Target("http://127.0.0.1:8470", "t"), "todo", "python -m app.seed", 80, 24, "xterm")
    assert plain == ("ws://127.0.0.1:8470/apps/todo/console?command=python+-m+app.seed&columns=80&rows=24"
                     "&term=xterm")
    assert console_url(Target("https://paas.example", "t"), "todo", "bash", 1, 1, "x").startswith("wss://paas.example/")
