"""Landlock scopes on this kernel: a scoped process reaches no abstract socket and signals no process
outside its own domain, while its own still work."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from shipyard import landlock

pytestmark = pytest.mark.skipif(landlock.abi_version() < landlock.SCOPES_ABI, reason="Landlock scopes need Linux 6.12")


def test_a_scoped_child_reaches_nothing_outside_its_domain() -> None:
    name = f"\0shipyard-landlock-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX) as outside:
        outside.bind(name)
        outside.listen()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: scope itself, then try
            landlock.scope_self()
            results = []
            with socket.socket(socket.AF_UNIX) as s:
                results.append(s.connect_ex(name))
            try:
                os.kill(os.getppid(), 0)
                results.append(0)
            except PermissionError:
                results.append(1)
            with socket.socket(socket.AF_UNIX) as inner, socket.socket(socket.AF_UNIX) as client:
                inner.bind(name + "-inner")
                inner.listen()
                results.append(client.connect_ex(name + "-inner"))
            os.write(write, ",".join(map(str, results)).encode())
            os._exit(0)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        outcome = os.read(read, 100).decode().split(",")
        os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    # [connect outside, signal the parent (1 = refused), connect to its own abstract socket]
    assert outcome == [str(errno.EPERM), "1", "0"], outcome
