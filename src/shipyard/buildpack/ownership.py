"""Who owns a build's folders, before and after the build runs.

Before: the build uid gets its fresh slug (except the files hardlinked from earlier slugs) and
its app's uv cache, and may add virtualenvs to the app's venvs folder but not remove or rename
the ones there (root-owned, sticky, group = the build gid).

After a successful build, once no process of the build uid remains: "freeze" the slug and its
new virtualenv. Every entry belongs to the app's runtime uid (instances run as that uid on an
overlay over the slug, so they can write their copy-on-write app dir), with no group/other write
and no setuid/setgid bits. The next build, as the build uid, can then read and hardlink them but
never change them; a rejected build cannot touch what the live release runs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psutil

from shipyard.buildpack import nofollow
from shipyard.errors import BuildError

FROZEN_CLEAR = stat.S_IWGRP | stat.S_IWOTH | stat.S_ISUID | stat.S_ISGID
FROZEN_READ = stat.S_IRGRP | stat.S_IROTH
FROZEN_ENTER = stat.S_IXGRP | stat.S_IXOTH


def hand_over_slug(slug_dir: Path, uid: int, gid: int) -> None:
    """What the source copy made (root's) goes to the build uid; files shared with a frozen slug stay frozen."""
    for _, dirs, files, dir_fd in os.fwalk(slug_dir):
        for name in dirs + files:
            if os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_uid == 0:
                os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    os.chown(slug_dir, uid, gid, follow_symlinks=False)


def prepare_venvs_dir(venvs_dir: Path, build_gid: int) -> None:
    """The build can create venvs here, but the sticky bit keeps it from deleting or renaming frozen ones."""
    venvs_dir.mkdir(parents=True, exist_ok=True)
    with nofollow.opened_dir(venvs_dir) as fd:
        os.fchown(fd, 0, build_gid)
        os.fchmod(fd, 0o1770)


def prepare_cache(cache_dir: Path, uid: int) -> None:
    """The app's own uv cache, owned by its build uid; one left by another uid (an app of the same name
    destroyed since) is not trusted and starts over."""
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with nofollow.opened_dir(cache_dir.parent) as parent:
        try:
            st = os.stat(cache_dir.name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and (not stat.S_ISDIR(st.st_mode) or st.st_uid != uid):
            nofollow.remove(parent, cache_dir.name)
            st = None
        if st is None:
            os.mkdir(cache_dir.name, 0o700, dir_fd=parent)
            os.chown(cache_dir.name, uid, uid, dir_fd=parent, follow_symlinks=False)


def stop_build_processes(uid: int, timeout: float = 5.0) -> None:
    """Make sure no process of the build uid is left (each step's pid namespace should have taken them all)."""
    for _ in range(10):  # a process may fork while the previous round is killed
        found = []
        for proc in psutil.process_iter(["uids", "status"]):
            uids = proc.info["uids"]
            if uids and uid in uids and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        if not found:
            return
        for proc in found:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(found, timeout=timeout)
    raise BuildError(f"Processes of the build (uid {uid}) could not be stopped; the slug was not kept.")


def _freeze_entry(name: str, dir_fd: int, uid: int, gid: int) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):  # a link's own mode means nothing (and no process can swap it now)
        mode = stat.S_IMODE(st.st_mode) & ~FROZEN_CLEAR
        # Readable by the app's next build (it reuses the venv, runs the shared files): no one else can reach
        # a slug, its parent folder is root's 0700.
        mode |= FROZEN_READ | (FROZEN_ENTER if stat.S_ISDIR(st.st_mode) or mode & stat.S_IXUSR else 0)
        os.chmod(name, mode, dir_fd=dir_fd)


def freeze(tree: Path, uid: int, gid: int) -> None:
    """Every entry of tree (links themselves, never followed) to uid/gid, without group/other write or set-id bits.
    Call only when no build process can run: the walk is fd-based, but the tree must stand still."""
    for _, dirs, files, dir_fd in os.fwalk(tree):
        for name in dirs + files:
            _freeze_entry(name, dir_fd, uid, gid)
    with nofollow.opened_dir(tree.parent) as parent:
        _freeze_entry(tree.name, parent, uid, gid)
