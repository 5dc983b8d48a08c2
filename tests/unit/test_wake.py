"""Waking an app at zero: requests arriving together share one start; a failed start is not retried for every
request of a flood, only after a pause."""

from __future__ import annotations

import asyncio

import pytest

from shipyard.control.wake import WAKE_RETRY_AFTER, Waker
from shipyard.errors import DeployError

from .fake_supervisor import FakeInstance, FakeSupervisor


def test_requests_arriving_together_share_one_start() -> None:
    supervisor, starts, woke = FakeSupervisor(), [], []

    async def scale(app: str, changes: dict[str, int]) -> None:
        starts.append(changes)
        await asyncio.sleep(0.05)
        supervisor.running = [FakeInstance("web.1", "127.0.0.1:5001")]

    async def run() -> list[str]:
        waker = Waker(supervisor, scale, woke.append)  # type: ignore[arg-type]
        return list(await asyncio.gather(*(waker.wake("todo") for _ in range(5))))

    assert asyncio.run(run()) == ["127.0.0.1:5001"] * 5
    assert starts == [{"web": 1}] and woke == ["todo"]


def test_a_failed_start_is_not_retried_for_each_request_until_a_pause() -> None:
    supervisor, starts, now = FakeSupervisor(), [], [100.0]

    async def scale(app: str, changes: dict[str, int]) -> None:
        starts.append(changes)
        raise DeployError("web.1 exited with code 3")

    async def run() -> None:
        waker = Waker(supervisor, scale, lambda app: None, clock=lambda: now[0])  # type: ignore[arg-type]
        with pytest.raises(DeployError):
            await waker.wake("todo")
        for _ in range(3):
            with pytest.raises(DeployError, match="less than"):
                await waker.wake("todo")
        now[0] += WAKE_RETRY_AFTER
        with pytest.raises(DeployError, match="exited"):
            await waker.wake("todo")

    asyncio.run(run())
    assert len(starts) == 2
