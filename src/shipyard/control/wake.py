"""Waking an app scaled to zero, for the request the activator holds: one start shared by the requests that
arrive together, and a start that just failed not retried for every request of a flood."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from shipyard.errors import DeployError, ShipyardError
from shipyard.runtime.supervisor import Supervisor

WAKE_RETRY_AFTER = 10.0  # seconds before a failed start from zero is tried again for a new request


class Waker:
    def __init__(self, supervisor: Supervisor, scale: Callable[[str, dict[str, int]], Awaitable[object]],
                 woke: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._supervisor = supervisor
        self._scale = scale
        self._woke = woke
        self._clock = clock
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._failed_at: dict[str, float] = {}

    async def wake(self, name: str) -> str:
        """The address of a ready web instance of the app, started if it has none."""
        if address := self._ready(name):
            return address
        if self._supervisor.frozen(name):
            await self._supervisor.thaw(name)  # milliseconds: the processes are all there
            self._woke(name)
            if address := self._ready(name):
                return address
        failed_at = self._failed_at.get(name)
        if failed_at is not None and self._clock() - failed_at < WAKE_RETRY_AFTER:
            # Each request of a flood would otherwise start (and crash) an instance again.
            raise DeployError(f"its last start failed less than {WAKE_RETRY_AFTER:g} s ago.")
        task = self._starting.get(name)
        if task is None or task.done():
            task = self._starting[name] = asyncio.create_task(self._start(name))
        await asyncio.shield(task)
        if address := self._ready(name):
            return address
        raise DeployError("its web instance stopped again at once.")

    def _ready(self, name: str) -> str | None:
        return next((i.address for i in self._supervisor.instances(name) if i.routable), None)  # routable: web, up

    async def _start(self, name: str) -> None:
        self._supervisor.app_log(name).write("shipyard[activator]", "A request arrived: starting web (scaled to zero)")
        try:
            await self._scale(name, {"web": 1})
        except ShipyardError:
            self._failed_at[name] = self._clock()
            raise
        self._failed_at.pop(name, None)
        self._woke(name)
