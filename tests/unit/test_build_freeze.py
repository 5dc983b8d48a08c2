"""A rejected build cannot change a kept slug or venv: slugs and venvs are frozen to the runtime uid."""

import io
import os
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import psutil
import pytest

from shipyard.buildpack.install import COMPLETE, mark_complete, reusable_venv
from shipyard.buildpack.ownership import freeze, hand_over_slug, prepare_cache, prepare_venvs_dir, stop_build_processes
from shipyard.buildpack.source import copy_source
from shipyard.git.hook import export_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="ownership changes need root")
BUILD, RUNTIME = 399_991, 399_992


def test_freeze_gives_everything_to_the_runtime_uid_without_write_or_setid_bits(tmp_path: Path) -> None:
    slug = tmp_path / "slug"
    (slug / "app" / "sub").mkdir(parents=True)
    (slug / "app" / "sub" / "f").write_text("x")
    os.chmod(slug / "app" / "sub" / "f", 0o6777)
    outside = tmp_path / "outside"
    outside.write_text("root's")
    (slug / "app" / "link").symlink_to(outside)
    freeze(slug, RUNTIME, RUNTIME)
    for path in (slug, slug / "app", slug / "app" / "sub", slug / "app" / "sub" / "f", slug / "app" / "link"):
        assert path.lstat().st_uid == RUNTIME
    assert stat.S_IMODE((slug / "app" / "sub" / "f").stat().st_mode) == 0o755
    assert outside.stat().st_uid == 0  # the link's target is not touched


def test_a_new_slug_shares_frozen_files_but_the_build_gets_only_its_own(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "same.txt").write_text("same")
    (src / "new.txt").write_text("new")
    old = tmp_path / "old"
    copy_source(src, old / "app", None)
    (old / "app" / "new.txt").write_text("old version")
    freeze(old, RUNTIME, RUNTIME)
    slug = tmp_path / "slug"
    copied = copy_source(src, slug / "app", old / "app", trusted_uid=RUNTIME)
    assert (copied.changed, copied.linked) == (1, 1)
    hand_over_slug(slug, BUILD, BUILD)
    assert (slug / "app" / "same.txt").stat().st_ino == (old / "app" / "same.txt").stat().st_ino
    assert (slug / "app" / "same.txt").stat().st_uid == RUNTIME  # shared: still frozen
    assert (slug / "app" / "new.txt").stat().st_uid == BUILD and (slug / "app").stat().st_uid == BUILD
    # Files the previous build could have changed or planted are never shared.
    assert copy_source(src, tmp_path / "s2" / "app", old / "app", trusted_uid=BUILD).linked == 0


def test_links_in_the_previous_slug_are_not_followed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "hostname").write_text(Path("/etc/hostname").read_text())
    old = tmp_path / "old"
    (old / "app").mkdir(parents=True)
    (old / "app" / "etc").symlink_to("/etc")  # a build replaced a folder of its slug with a link
    assert copy_source(src, tmp_path / "slug" / "app", old / "app").linked == 0
    assert (tmp_path / "slug" / "app" / "etc" / "hostname").stat().st_ino != Path("/etc/hostname").stat().st_ino


def test_venvs_folder_and_cache(tmp_path: Path) -> None:
    venvs = tmp_path / "venvs"
    prepare_venvs_dir(venvs, BUILD)
    st = venvs.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, BUILD, 0o1770)
    cache = tmp_path / "cache" / "app"
    cache.mkdir(parents=True)
    (cache / "poisoned").write_text("x")
    os.chown(cache, BUILD + 1, BUILD + 1)  # left by another uid (an app of the same name, destroyed)
    prepare_cache(cache, BUILD)
    assert cache.stat().st_uid == BUILD and list(cache.iterdir()) == []


def test_only_a_frozen_venv_marked_by_root_is_reused(tmp_path: Path) -> None:
    venvs = tmp_path / "venvs"
    (venvs / "d1").mkdir(parents=True)
    (venvs / "d1" / COMPLETE).write_text("")
    os.chown(venvs / "d1", BUILD, BUILD)  # made up by a build for a digest it guessed
    assert reusable_venv(venvs, "d1", RUNTIME) is None and not (venvs / "d1").exists()
    (venvs / "d2").mkdir()
    freeze(venvs / "d2", RUNTIME, RUNTIME)
    (venvs / "d2" / COMPLETE).symlink_to(tmp_path)  # planted before the freeze
    mark_complete(venvs / "d2")
    assert reusable_venv(venvs, "d2", RUNTIME) == venvs / "d2"
    (venvs / "d3").symlink_to(venvs / "d2")
    assert reusable_venv(venvs, "d3", RUNTIME) is None and not (venvs / "d3").is_symlink()
    assert (venvs / "d2").is_dir()


def test_no_process_of_the_build_uid_survives() -> None:
    proc = subprocess.Popen(["setpriv", f"--reuid={BUILD}", f"--regid={BUILD}", "--clear-groups", "sleep", "60"])
    try:
        while psutil.Process(proc.pid).uids().real != BUILD:
            time.sleep(0.01)
        stop_build_processes(BUILD)
        proc.wait(timeout=5)  # reaped already (psutil waits on its own children): the code is lost
        assert not [p for p in psutil.process_iter(["uids"]) if BUILD in p.info["uids"]]
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("filtered", [True, False])
def test_export_writes_through_no_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filtered: bool) -> None:
    """A member going through a link an earlier member made is refused (git never makes one; a tar can),
    by the `tar` filter and, should its path checks be bypassed, by the O_NOFOLLOW walk."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        link = tarfile.TarInfo("out")
        link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path / "victim")
        tar.addfile(link)
        data = tarfile.TarInfo("out/x")
        data.size = 3
        tar.addfile(data, io.BytesIO(b"pwn"))
    (tmp_path / "victim").mkdir()
    (tmp_path / "dest").mkdir()
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: subprocess.CompletedProcess(argv, 0, buffer.getvalue()))
    if not filtered:
        monkeypatch.setattr(tarfile, "tar_filter", lambda member, dest: member)
    with pytest.raises((tarfile.OutsideDestinationError, NotADirectoryError) if filtered else NotADirectoryError):
        export_tree("HEAD", tmp_path / "dest")
    assert list((tmp_path / "victim").iterdir()) == []
    assert (tmp_path / "dest" / "out").is_symlink()
