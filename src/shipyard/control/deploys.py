"""A deploy's steps as data: each with its start and end time, status and log lines."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from shipyard.errors import ShipyardError
from shipyard.store.store import Store

Log = Callable[[str], Awaitable[None]]
MAX_STEP_LINES = 300


class DeployRecord:
    def __init__(self, store: Store, app: str, description: str, log: Log) -> None:
        self._store = store
        self._id = store.add_deploy(app, description)
        self._forward = log
        self.steps: list[dict[str, object]] = []
        self.release: int | None = None

    async def log(self, line: str) -> None:
        if self.steps:
            lines = self.steps[-1]["log"]
            assert isinstance(lines, list)
            lines.append(line)
            del lines[:-MAX_STEP_LINES]
        await self._forward(line)

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        step: dict[str, object] = {"name": name, "started": time.time(), "finished": None, "status": "running",
                                   "log": []}
        self.steps.append(step)
        self._save("running", finished=False)
        try:
            yield
        except BaseException as exc:
            step.update(finished=time.time(), status="failed")
            if isinstance(exc, ShipyardError):
                self._keep_detail(step, exc.message)
                self._save("failed", finished=True, error=exc.message, hint=exc.hint)
            elif isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)):
                self._save("failed", finished=True, error=f"The deploy was interrupted in the {name} step: the "
                           "platform stopped.", hint="Push again: the release that was serving before is kept.")
            else:
                self._save("failed", finished=True, error=f"The platform failed in the {name} step ({exc!r}).",
                           hint="This is a bug in Shipyard, not in the app: its log has the details.")
            raise
        step.update(finished=time.time(), status="succeeded")
        self._save("running", finished=False)

    def failed(self, exc: ShipyardError) -> None:
        """The deploy's final error, as the user is told it (callers above the step add to its hint)."""
        self._save("failed", finished=True, error=exc.message, hint=exc.hint)

    @staticmethod
    def _keep_detail(step: dict[str, object], message: str) -> None:
        """An error's lines after the first (an instance's last output, say) go into the failed step's log, so
        the dashboard can point at them."""
        lines = step["log"]
        assert isinstance(lines, list)
        detail = textwrap.dedent("\n".join(message.splitlines()[1:])).splitlines()
        lines.extend(line for line in detail if line.strip() and line not in lines)
        del lines[:-MAX_STEP_LINES]

    def finished_step(self, name: str, started: float, finished: float, log: list[str]) -> None:
        """A step that happened before this record existed (the push's upload, before the deploy lock)."""
        self.steps.append({"name": name, "started": started, "finished": finished, "status": "succeeded",
                           "log": log})
        self._save("running", finished=False)

    def succeeded(self) -> None:
        self._save("succeeded", finished=True)

    def _save(self, status: str, finished: bool, error: str | None = None, hint: str | None = None) -> None:
        self._store.save_deploy(self._id, steps=self.steps, status=status, release=self.release, finished=finished,
                                error=error, hint=hint)
