"""Room on the data directory's disk, whether a build fits, and stopping steps that never raise."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.errors import BuildError, OutOfSpace, PlatformError
from shipyard.runtime.disk import (FIRST_BUILD, DiskSpace, build_estimate, disk_space, low_disk, low_disk_warning,
                                   room_for_build, room_for_push, size_text, slug_size, tree_size)
from shipyard.stopping import StopSteps, describe

from .tmpfs import tmpfs

MB = 1024 * 1024


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 MB file system."""
    with tmpfs(tmp_path / "disk", "64m") as mount:
        yield mount


def test_disk_space_reads_the_file_system(disk: Path) -> None:
    space = disk_space(disk)
    assert space.total == 64 * MB and space.free == 64 * MB and space.percent_free == 100.0
    (disk / "big").write_bytes(b"x" * 62 * MB)
    space = disk_space(disk)
    assert space.free == 2 * MB and low_disk(space) and space.low
    assert space.describe() == "2.0 MB free of 64.0 MB (3.1 %)"
    assert "almost full: 2.0 MB free of 64.0 MB (3.1 %)" in low_disk_warning(space)


def test_low_disk_is_below_five_percent_free() -> None:
    assert low_disk(DiskSpace(Path("/"), free=4, total=100))
    assert not low_disk(DiskSpace(Path("/"), free=5, total=100))
    assert DiskSpace(Path("/"), free=0, total=0).percent_free == 0.0
    assert [size_text(n) for n in (12, 2048, 3 * MB, 5 * 1024 * MB)] == ["12 bytes", "2.0 KB", "3.0 MB", "5.0 GB"]


def test_the_estimate_is_the_source_and_the_previous_slug_or_a_floor_for_a_first_build() -> None:
    assert build_estimate(10 * MB, None) == 10 * MB + FIRST_BUILD
    assert build_estimate(10 * MB, 80 * MB) == 90 * MB


def test_a_build_that_does_not_fit_is_refused_with_the_free_space_and_the_fixes(disk: Path) -> None:
    (disk / "big").write_bytes(b"x" * 40 * MB)
    with pytest.raises(OutOfSpace) as refused:
        room_for_build(disk, source_size=1 * MB, previous_slug_size=None)  # a first build: 200 MB floor
    error = refused.value
    assert isinstance(error, BuildError) and error.status_code == 507
    assert "24.0 MB free of 64.0 MB (37.5 %)" in error.message and "needs about 201.0 MB" in error.message
    assert error.hint is not None
    assert "keeps serving" in error.hint and "SHIPYARD_RELEASES_KEPT" in error.hint
    assert "shipyard releases" in error.hint and "bigger disk" in error.hint
    assert room_for_build(disk, source_size=1 * MB, previous_slug_size=20 * MB).free == 24 * MB


def test_sizes_count_blocks_and_a_slugs_shared_venv(tmp_path: Path) -> None:
    slug = tmp_path / "slugs" / "app" / "1-abc"
    (slug / "app").mkdir(parents=True)
    venv = tmp_path / "slugs" / "app" / "venvs" / "d1"
    (venv / "lib").mkdir(parents=True)
    for n in range(10):
        (venv / "lib" / f"m{n}.py").write_text("x = 1\n")  # small files take whole blocks
    (slug / "app" / "big").write_bytes(b"x" * 100_000)
    (slug / "venv").symlink_to(venv)
    assert tree_size(venv) >= 10 * 4096
    assert tree_size(slug) >= 100_000 and tree_size(slug) < 200_000  # the symlink is not followed
    assert slug_size(slug) == tree_size(slug) + tree_size(venv)


def test_room_for_push_measures_the_source_and_the_previous_slug(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "app.py").write_text("print('hi')\n")
    free = disk_space(tmp_path).free
    assert room_for_push(tmp_path, source, previous_slug=source).free > 0
    if free < FIRST_BUILD:
        pytest.skip("this machine's disk is too full to show a fitting first build")
    room_for_push(tmp_path, source, previous_slug=None)


# Stopping: every step runs, failures are one line each

def test_every_stop_step_runs_and_failures_are_one_line_each() -> None:
    ran: list[str] = []

    def full_disk() -> None:
        ran.append("store")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/shipyard.db")

    async def gone() -> None:
        ran.append("postgres")
        raise PlatformError("PostgreSQL did not stop.\nIts log says why.", hint="see the log")

    async def run() -> list[str]:
        steps = StopSteps()
        await steps.run("Stopping PostgreSQL", gone)
        await steps.run("Closing the store", full_disk)
        await steps.run("Removing the state file", lambda: ran.append("state"))
        return steps.failures

    failures = asyncio.run(run())
    assert ran == ["postgres", "store", "state"]
    assert failures == ["Stopping PostgreSQL failed: PostgreSQL did not stop.",
                        "Closing the store failed: No space left on device (/data/shipyard.db)"]


def test_describe_keeps_to_one_line() -> None:
    assert describe(ProcessLookupError(errno.ESRCH, "No such process")) == "No such process"
    assert describe(RuntimeError("first\nsecond")) == "RuntimeError: first"
    assert describe(KeyError()) == "KeyError"


def test_platform_shutdown_runs_every_step_and_reaps_a_dead_edge_loop() -> None:
    from types import SimpleNamespace

    from shipyard.control.platform import Platform

    stopped: list[str] = []

    class Supervisor:
        async def shutdown(self, grace: float) -> None:
            stopped.append("apps")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    class Edge:
        async def stop(self) -> None:
            stopped.append("edge")
            raise ProcessLookupError(errno.ESRCH, "No such process")

    async def edge_loops_stop() -> None:  # what EdgeSync.stop raises when its loop had died
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/edge/hosts.map")

    async def metrics_stop() -> None:
        stopped.append("metrics")

    async def autoscaler_stop() -> None:
        stopped.append("autoscaler")

    async def activator_stop() -> None:
        stopped.append("activator")

    async def run() -> list[str]:
        fake = SimpleNamespace(_retry_tasks={}, supervisor=Supervisor(), edge=Edge(),
                               edge_sync=SimpleNamespace(stop=edge_loops_stop), settings=SimpleNamespace(drain_grace=1.0),
                               metrics_history=SimpleNamespace(stop=metrics_stop),
                               autoscaler=SimpleNamespace(stop=autoscaler_stop),
                               activator=SimpleNamespace(stop=activator_stop), local=True,
                               backend=SimpleNamespace(name="local", stop=lambda: None))
        return await Platform.shutdown(fake)  # type: ignore[arg-type]

    failures = asyncio.run(run())
    assert stopped == ["metrics", "autoscaler", "activator", "apps", "edge"]
    assert failures == ["Stopping the apps failed: No space left on device",
                        "Updating the edge's routes failed: No space left on device (/data/edge/hosts.map)",
                        "Stopping the edge failed: No such process"]


def test_shipyard_up_stops_everything_and_warns_once_per_failure(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from shipyard.settings import Settings
    from shipyard.up import PlatformServer

    settings = Settings(data_dir=tmp_path)
    settings.state_file.write_text("{}")
    said: list[str] = []
    stopped: list[str] = []

    class Platform:
        async def shutdown(self) -> list[str]:
            stopped.append("platform")
            return ["Stopping the edge failed: No such process"]

    class Postgres:
        async def stop(self) -> None:
            stopped.append("postgres")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close_cgroups() -> None:
        stopped.append("cgroups")
        raise ProcessLookupError(errno.ESRCH, "No such process")

    server = PlatformServer(settings, said.append)
    asyncio.run(server.stop_everything(Platform(), SimpleNamespace(close=close_cgroups), None,  # type: ignore[arg-type]
                                       Postgres(), SimpleNamespace(close=lambda: stopped.append("store"))))
    assert stopped == ["platform", "cgroups", "postgres", "store"]
    assert not settings.state_file.exists()
    assert said == ["Warning: Stopping the edge failed: No such process",
                    "Warning: Closing the apps' cgroups failed: No such process",
                    "Warning: Stopping PostgreSQL failed: No space left on device"]
