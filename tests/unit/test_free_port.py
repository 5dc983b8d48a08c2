"""proc.free_port: ports below the kernel's range for outgoing connections, found even when an app holds
nearly all of them, and the kernel's pick only when it holds every one."""

from __future__ import annotations

import socket
from contextlib import ExitStack

from shipyard import proc


def _hold(stack: ExitStack, port: int) -> bool:
    s = stack.enter_context(socket.socket())
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        return False  # taken already, by something else on the machine
    return True


def test_picks_lie_below_the_outgoing_range():
    low = proc._first_ephemeral_port()
    assert all(max(1024, low - 12_000) <= proc.free_port() < low for _ in range(50))


def test_the_last_free_port_is_found_and_then_the_kernel_picks(monkeypatch):
    monkeypatch.setattr(proc, "_first_ephemeral_port", lambda: 1030)  # the range below it: 1024-1029
    with ExitStack() as stack:  # which of them this machine leaves free
        ours = [port for port in range(1024, 1030) if _hold(stack, port)]
    assert ours, "every port of 1024-1029 is taken on this machine"
    spare = ours[-1]
    with ExitStack() as stack:  # an app holding all but one
        for port in ours[:-1]:
            _hold(stack, port)
        assert {proc.free_port() for _ in range(5)} == {spare}
        _hold(stack, spare)
        assert proc.free_port() >= 1030  # every one below is held: the kernel's pick
