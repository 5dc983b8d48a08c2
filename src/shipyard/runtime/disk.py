"""Room on the data directory's disk: how much is free, whether it is low, whether a build fits.

Everything the platform keeps (repositories, slugs, uv caches, logs, the embedded PostgreSQL's data) lives in
the data directory, so its file system is the one that fills up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import OutOfSpace

LOW_FRACTION = 0.05  # below this share free, `shipyard doctor` and `shipyard up` warn
# What a first build writes besides its source: a virtualenv and the app's uv cache of the wheels in it
# (a Flask app's take some 60 MB, a Django app's with psycopg and friends some 150 MB), with room to spare.
FIRST_BUILD = 200 * 1024 * 1024


@dataclass(frozen=True)
class DiskSpace:
    path: Path
    free: int  # bytes an unprivileged process may still write (builds and apps are not root)
    total: int

    @property
    def percent_free(self) -> float:
        return 100.0 * self.free / self.total if self.total else 0.0

    @property
    def low(self) -> bool:
        return low_disk(self)

    def describe(self) -> str:
        return f"{size_text(self.free)} free of {size_text(self.total)} ({self.percent_free:.1f} %)"


def size_text(count: int) -> str:
    for unit, scale in (("GB", 1024 ** 3), ("MB", 1024 ** 2), ("KB", 1024)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def disk_space(path: Path) -> DiskSpace:
    st = os.statvfs(path)
    return DiskSpace(path, free=st.f_bavail * st.f_frsize, total=st.f_blocks * st.f_frsize)


def low_disk(space: DiskSpace, fraction: float = LOW_FRACTION) -> bool:
    return space.free < space.total * fraction


def low_disk_warning(space: DiskSpace) -> str:
    return (f"the data directory's disk is almost full: {space.describe()} on {space.path}. Pushes that do not "
            "fit are rejected and the apps' log lines are dropped; free space there or move the data "
            "directory to a bigger disk.")


def tree_size(path: Path) -> int:
    """Bytes the files and folders under `path` take on disk, as `du` counts them (a venv's many small files
    take whole blocks); symlinks are not followed, and a file hardlinked into two trees counts in each."""
    total = 0
    for folder, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:  # gone meanwhile
                pass
    return total


def slug_size(slug: Path) -> int:
    """A slug's size with its virtualenv, which a reused venv keeps beside the slugs (`venv` is a symlink)."""
    venv = slug / "venv"
    extra = tree_size(venv.resolve()) if venv.is_symlink() and venv.resolve().is_dir() else 0
    return tree_size(slug) + extra


def build_estimate(source_size: int, previous_slug_size: int | None) -> int:
    """What a build may write: the source copied into the new slug (every file changed, at worst), and a
    new virtualenv plus the wheels uv caches for it. The previous slug (its source and venv) measures
    that venv for this app's dependencies; a first build has none, so FIRST_BUILD stands in for it."""
    return source_size + (previous_slug_size if previous_slug_size is not None else FIRST_BUILD)


def room_for_build(data_dir: Path, source_size: int, previous_slug_size: int | None) -> DiskSpace:
    """The disk's space if a build fits in it, else OutOfSpace naming the free space and the fixes."""
    space = disk_space(data_dir)
    needed = build_estimate(source_size, previous_slug_size)
    if space.free < needed:
        raise OutOfSpace(
            f"Not enough disk space to build this push: {space.describe()} on the disk of {data_dir}, and the "
            f"build needs about {size_text(needed)} (the source, {size_text(source_size)}, and a virtualenv "
            "with its cache).",
            hint="Nothing was built: the running release keeps serving. Free space on that disk (old database "
                 "backups in the data directory's backups/, other files); or keep fewer old slugs for rollback: "
                 "start `shipyard up` with SHIPYARD_RELEASES_KEPT=5 (default 20), and the slugs of older "
                 "releases (`shipyard releases <app>`) are deleted at each app's next release (a config change "
                 "makes one without a build); or move the data directory to a bigger disk. Then push again.")
    return space


def room_for_push(data_dir: Path, source_dir: Path, previous_slug: Path | None) -> DiskSpace:
    """`room_for_build` for a pushed source tree and the app's last slug (walks both: call off the loop)."""
    return room_for_build(data_dir, tree_size(source_dir), slug_size(previous_slug) if previous_slug else None)
