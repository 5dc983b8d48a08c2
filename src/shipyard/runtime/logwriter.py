"""The thread that writes the app logs, so no log line is formatted or written on the platform's event loop.

One thread for every app rather than one per app: the writes go to one disk either way, a platform with
hundreds of apps would otherwise carry hundreds of idle threads, and one thread is one `join` at shutdown.
Fairness between apps comes from their rate limits (loglimits), applied before anything is queued: no app
can take more than its share of this thread.
"""

from __future__ import annotations

import sys
import threading
from typing import Protocol

# Once woken, the thread waits this long for more lines before writing: a flood then wakes it a few dozen
# times a second, not once per chunk read, and each wake-up is a GIL hand-over the event loop waits through.
LINGER = 0.02


class Sink(Protocol):
    def append(self, entries: list[object]) -> None:
        """Write `entries` (never raises for a failing disk: it drops and counts them itself)."""


class LogWriter:
    """A bounded queue of (sink, entry) and the thread that drains it in batches, in order per sink.

    The thread starts with the first entry (a platform that never logs has none) and is a daemon, so a
    writer nobody closed cannot keep the interpreter alive; `close` drains and joins it.
    """

    def __init__(self, queue_bytes: int, linger: float = LINGER) -> None:
        self._queue_bytes = queue_bytes
        self._linger = linger
        self._cond = threading.Condition()
        self._items: list[tuple[Sink, object]] = []
        self._pending = 0  # bytes of bounded entries queued, not yet taken by the thread
        self._queued = 0  # entries ever queued, and ever handed to their sink: `flush` compares them
        self._written = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, sink: Sink, entry: object, size: int | None) -> bool:
        """Queue an entry; False if refused (queue full, or the writer closed).

        `size`: the entry's bytes, counted against the bound; None for the platform's own lines, which are
        few and must not be lost to an app's flood, so they are only refused once the writer is closed.
        """
        with self._cond:
            if self._closed or (size is not None and self._pending + size > self._queue_bytes):
                return False
            first = not self._items
            self._items.append((sink, entry))
            self._pending += size or 0
            self._queued += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="shipyard-log-writer", daemon=True)
                self._thread.start()
            if first:  # only the first entry wakes the thread: the others would cut its linger short
                self._cond.notify()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until what was queued before this call is written; False if that took over `timeout`."""
        with self._cond:
            target = self._queued
            return self._cond.wait_for(lambda: self._written >= target, timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Write what is queued, then stop the thread; False if it was still busy after `timeout` (a disk
        that hangs): it is a daemon and ends with the process."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
                if not self._items:
                    return
                if not self._closed:
                    self._cond.wait(self._linger)  # more lines join this batch (close cuts it short)
                # Once taken, a batch no longer counts against the bound: at most twice the bound is held.
                items, self._items, self._pending = self._items, [], 0
            batches: dict[Sink, list[object]] = {}
            for sink, entry in items:
                batches.setdefault(sink, []).append(entry)
            for sink, entries in batches.items():
                try:
                    sink.append(entries)
                except Exception as exc:  # noqa: BLE001 - a bug in one log must not stop every app's logging
                    print(f"Warning: the log writer failed on {sink}: {exc!r}", file=sys.stderr)
            with self._cond:
                self._written += len(items)
                self._cond.notify_all()
