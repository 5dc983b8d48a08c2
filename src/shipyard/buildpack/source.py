"""Copying the pushed source into the slug: only changed files are copied, the rest are hardlinked.

Slugs are frozen once built (owned by the app's runtime uid, no group/other write: see
ownership.py), so an unchanged file can be shared with the previous slug instead of copied:
the next build can replace the link in its own slug, never write the shared file.
The previous slug was written by a build, so it is read without following any link in it,
and only files it froze (owned by `trusted_uid`) are shared.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shipyard.buildpack import nofollow

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Copied:
    changed: int
    linked: int


class Previous:
    """The previous slug's app folder, opened folder by folder without following links."""

    def __init__(self, root: Path | None, trusted_uid: int | None) -> None:
        self.root = root
        self.trusted_uid = trusted_uid
        self.stack = contextlib.ExitStack()

    def __enter__(self) -> "Previous":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def folder(self, rel: str) -> int | None:
        if self.root is None:
            return None
        try:
            fd = nofollow.open_dir(self.root, rel)
        except (FileNotFoundError, nofollow.SymlinkRefused):
            return None
        self.stack.callback(os.close, fd)
        return fd

    def shareable(self, dir_fd: int | None, name: str, src: Path) -> bool:
        if dir_fd is None:
            return False
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode) or (self.trusted_uid is not None and st.st_uid != self.trusted_uid):
            return False
        ours = src.stat()
        if st.st_size != ours.st_size or (st.st_mode & 0o111) != (ours.st_mode & 0o111):
            return False
        fd = nofollow.open_file(dir_fd, name, name)
        with os.fdopen(fd, "rb") as theirs, open(src, "rb") as mine:
            return same_bytes(theirs, mine)


def same_bytes(a: BinaryIO, b: BinaryIO) -> bool:
    while True:
        x, y = a.read(CHUNK), b.read(CHUNK)
        if x != y:
            return False
        if not x:
            return True


def copy_source(source: Path, dest: Path, previous: Path | None, trusted_uid: int | None = None) -> Copied:
    """source (the exported push: root's, seen by no build) into dest (new); unchanged files linked from previous."""
    changed = linked = 0
    with Previous(previous, trusted_uid) as prev:
        for root, dirs, files in os.walk(source):
            dirs[:] = [d for d in dirs if not (root == str(source) and d == ".git")]
            rel = Path(root).relative_to(source)
            (dest / rel).mkdir(parents=True, exist_ok=True)
            for name in dirs:
                if (Path(root) / name).is_symlink():
                    os.symlink(os.readlink(Path(root) / name), dest / rel / name)
            dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
            old_dir = prev.folder(rel.as_posix()) if files else None
            for name in files:
                src, out = Path(root) / name, dest / rel / name
                if src.is_symlink():
                    os.symlink(os.readlink(src), out)
                elif prev.shareable(old_dir, name, src):
                    os.link(name, out, src_dir_fd=old_dir, follow_symlinks=False)
                    linked += 1
                else:
                    shutil.copy2(src, out)
                    changed += 1
    return Copied(changed, linked)
