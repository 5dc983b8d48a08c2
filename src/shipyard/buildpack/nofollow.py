"""File I/O on paths a build or a pushed repository controls, refusing symlinks at every step.

The platform runs as root: a symlink planted by a build (or committed in a repository) would
otherwise make it read, write or truncate any file on the machine. Each helper walks from a
directory the platform trusts, one component at a time with O_NOFOLLOW, so no component of
the path can be a link; regular files only (a FIFO would block a read forever).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SymlinkRefused(OSError):
    """A component of the path is a symlink: the platform does not go through it."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.ELOOP, f"{path} is a symlink", path)


def parts(rel: str) -> list[str]:
    names = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in names:
        raise ValueError(f"{rel!r} leaves its folder")
    return names


def _refusal(exc: OSError, name: str, dir_fd: int, shown: str) -> OSError:
    """ELOOP/ENOTDIR from an O_NOFOLLOW open: a symlink says so, anything else is just absent."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return exc
    if stat.S_ISLNK(st.st_mode):
        return SymlinkRefused(shown)
    return FileNotFoundError(errno.ENOENT, f"{shown} is not a directory", shown) if exc.errno == errno.ENOTDIR \
        else exc


def open_dir(root: Path | str, rel: str = "") -> int:
    """An fd on root/rel (root's own last component must not be a link either); the caller closes it."""
    fd = os.open(root, O_DIR)
    walked = str(root)
    try:
        for name in parts(rel):
            walked = f"{walked}/{name}"
            try:
                new = os.open(name, O_DIR, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _refusal(exc, name, fd, walked) from None
                raise
            os.close(fd)
            fd = new
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def opened_dir(root: Path | str, rel: str = "") -> Iterator[int]:
    fd = open_dir(root, rel)
    try:
        yield fd
    finally:
        os.close(fd)


def split(rel: str) -> tuple[str, str]:
    names = parts(rel)
    if not names:
        raise ValueError("a file name is needed")
    return "/".join(names[:-1]), names[-1]


def open_file(dir_fd: int, name: str, shown: str) -> int:
    """A read fd on a regular file in dir_fd (O_NONBLOCK: opening a FIFO must not wait for a writer)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SymlinkRefused(shown) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, f"{shown} is not a regular file", shown)
    return fd


def read_bytes(root: Path | str, rel: str) -> bytes:
    """root/rel's bytes. FileNotFoundError when absent or not a regular file; SymlinkRefused through a link."""
    folder, name = split(rel)
    with opened_dir(root, folder) as dir_fd:
        fd = open_file(dir_fd, name, f"{root}/{rel}")
    with os.fdopen(fd, "rb") as f:
        return f.read()


def read_text(root: Path | str, rel: str) -> str:
    return read_bytes(root, rel).decode("utf-8", errors="replace")


def lstat(root: Path | str, rel: str) -> os.stat_result | None:
    """root/rel's own status (a link is reported as a link), or None when it or a folder on the way is absent."""
    folder, name = split(rel)
    try:
        with opened_dir(root, folder) as dir_fd:
            return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except (FileNotFoundError, SymlinkRefused):
        return None


def is_file(root: Path | str, rel: str) -> bool:
    st = lstat(root, rel)
    return st is not None and stat.S_ISREG(st.st_mode)


def is_dir(root: Path | str, rel: str) -> bool:
    st = lstat(root, rel)
    return st is not None and stat.S_ISDIR(st.st_mode)


def remove(dir_fd: int, name: str) -> None:
    """Whatever is at name (a link itself, not its target; a folder with its contents)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)  # fd-based: never follows a link inside
    else:
        os.unlink(name, dir_fd=dir_fd)


def write_new(folder: Path, name: str, data: bytes, mode: int = 0o644) -> None:
    """Replace folder/name with a new file (unlink, then O_EXCL|O_NOFOLLOW: a planted link is removed, never
    written through)."""
    with opened_dir(folder) as dir_fd:
        remove(dir_fd, name)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), mode)  # the platform's umask would narrow it


def symlink_new(folder: Path, name: str, target: str) -> None:
    """Replace folder/name with a symlink to target."""
    with opened_dir(folder) as dir_fd:
        remove(dir_fd, name)
        os.symlink(target, name, dir_fd=dir_fd)
