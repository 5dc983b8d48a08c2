"""`shipyard run` from a terminal: an interactive process on a pty in the app's environment."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time

from .harness import SHIPYARD, Shipyard


class Terminal:
    """The CLI on a pseudo-terminal of 40 rows × 100 columns, as a user's terminal emulator runs it."""

    def __init__(self, shipyard: Shipyard, *args: str) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        self.proc = subprocess.Popen([*SHIPYARD, *args], stdin=slave, stdout=slave, stderr=slave, env=shipyard.env,
                                     start_new_session=True)
        os.close(slave)
        self.output = b""

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            if time.monotonic() > deadline or not self.read(deadline - time.monotonic()):
                raise AssertionError(f"{text!r} not seen; the terminal shows:\n{self.output.decode(errors='replace')}")

    def read(self, timeout: float) -> bool:
        if not select.select([self.master], [], [], max(timeout, 0))[0]:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the CLI exited and closed the terminal
            return False
        self.output += data
        return bool(data)

    def finish(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.read(0.1)
        code = self.proc.wait(timeout=1)
        os.close(self.master)
        return code


def test_interactive_shell_with_ctrl_c_resize_and_exit_code(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "tty")
    shipyard.push(shipyard.checkout("release-worker", "tty"))

    term = Terminal(shipyard, "run", "tty")
    term.type("echo process=$SHIPYARD_PROCESS dyno=${DYNO-unset} release=$SHIPYARD_RELEASE; stty size; "
              "python -c 'import sys; print(\"stdin is a tty:\", sys.stdin.isatty())'\n")
    term.expect("stdin is a tty: True")
    assert b"process=run.1 dyno=unset release=v1" in term.output and b"40 100" in term.output
    term.type("sleep 60\n")
    time.sleep(0.5)
    term.type("\x03")  # Ctrl-C reaches the remote process, not the CLI
    term.type("echo interrupted=$?\n")
    term.expect("interrupted=130", timeout=10)
    term.type("exit 3\n")
    assert term.finish() == 3
    logs = shipyard.cli("logs", "tty").out
    assert "shipyard[run.1]: Starting one-off process `bash` attached to a terminal" in logs
    assert "shipyard[run.1]: Process exited with status 3" in logs

    # A command (python's REPL here) instead of a shell.
    repl = Terminal(shipyard, "run", "tty", "--", "python")
    repl.expect(">>> ")
    repl.type("import os; print('port' in os.environ, os.getcwd().endswith('/app'))\n")
    repl.expect("False True")
    repl.type("import os; os._exit(5)\n")
    assert repl.finish() == 5, repl.output

    # The user's terminal goes away: the remote process is stopped.
    gone = Terminal(shipyard, "run", "tty", "--", "sleep", "600")
    time.sleep(1.5)
    os.kill(gone.proc.pid, signal.SIGKILL)
    gone.finish()
    shipyard.wait_for(lambda: "shipyard[run.3]: Process exited with status" in shipyard.cli("logs", "tty").out)

    # From a pipe it stays a batch command; --no-tty forces that from a terminal too.
    assert shipyard.cli("run", "tty", "--", "echo", "batch").out == "batch\n"
    no_tty = Terminal(shipyard, "run", "tty", "--no-tty", "--", "python", "-c", "import sys; print(sys.stdin.isatty())")
    assert no_tty.finish() == 0 and b"False" in no_tty.output

    unknown = Terminal(shipyard, "run", "nope")
    assert unknown.finish() == 1 and b"nope" in unknown.output
