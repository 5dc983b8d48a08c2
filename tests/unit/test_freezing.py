"""Thawing refreshes gunicorn's worker heartbeats: an idle worker's wait resumes after a thaw with the time it had
left, so its master would otherwise take it for hung."""

from __future__ import annotations

import os
import tempfile
import time

from shipyard.runtime.freezing import refresh_heartbeats


def test_heartbeat_files_held_open_are_touched_and_others_left_alone() -> None:
    beat, beat_name = tempfile.mkstemp(prefix="wgunicorn-")
    other, other_name = tempfile.mkstemp(prefix="notes-")
    try:
        os.unlink(beat_name)  # gunicorn unlinks it at once and keeps the descriptor
        os.unlink(other_name)
        for fd in (beat, other):
            os.utime(fd, (1.0, 1.0))
        assert refresh_heartbeats([os.getpid()]) == 1
        # gunicorn ≥ 22 compares its mtime with the monotonic clock; older ones read the ctime (wall clock).
        assert abs(os.fstat(beat).st_mtime - time.monotonic()) < 5
        assert abs(os.fstat(beat).st_ctime - time.time()) < 5
        assert os.fstat(other).st_mtime == 1.0
        assert refresh_heartbeats([2 ** 22 + 12345]) == 0  # a process that is gone
    finally:
        os.close(beat)
        os.close(other)
