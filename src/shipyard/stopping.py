"""Stopping in steps that all run: one that fails (a full disk, a process already gone) is noted, not raised,
so nothing after it is left running, and the operator reads one line per failure instead of a traceback."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from shipyard.errors import ShipyardError


def describe(exc: BaseException) -> str:
    """One line about a failure, for a person."""
    if isinstance(exc, ShipyardError):
        return exc.message.splitlines()[0] if exc.message else type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}{f' ({exc.filename})' if exc.filename else ''}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class StopSteps:
    """Runs each step whatever the ones before did; `failures` says which failed, and why."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    async def run(self, what: str, step: Callable[[], Awaitable[object] | object]) -> None:
        try:
            result = step()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001 - whatever it was, the next steps still run
            self.failures.append(f"{what} failed: {describe(exc)}")
