"""A slug packed for the Kubernetes backend's pods: its venv moved from the host path it was built at to
/slug and the runner image's interpreter, a tenant's tree packed by root without following a link or
reading a special file, the same bytes for the same slug, an archive made once per release; and the slug
tokens and the CA the fetch is given."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import os
import stat
import tarfile
from pathlib import Path

import pytest

from shipyard.errors import DeployError, InvalidInput
from shipyard.runtime.kubernetes import Hostname, KubeRelease, slug_archive
from shipyard.runtime.kubernetes.slug import CA_KEY, fetch_env, slug_secret
from shipyard.runtime.kubernetes.slug_archive import (
    SlugArchive,
    archive_for,
    pack_slug,
    relocate_shebang,
    slug_python,
)
from shipyard.runtime.kubernetes.slug_tokens import slug_token, token_matches

HOST_PYTHON = "/opt/pythons/3.12.4/bin/python3.12"
SCRIPT_BODY = b"# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom gunicorn.app.wsgiapp import run\n" \
              b"if __name__ == '__main__':\n    sys.exit(run())\n"


def make_slug(root: Path, reused_venv: bool = True) -> Path:
    """A slug as a build leaves it: `app/`, and a uv-made venv (in the app's venvs folder, linked)."""
    slug = root / "slugs" / "todo" / "1700000000000-abc1234"
    (slug / "app" / "src" / "todo").mkdir(parents=True)
    (slug / "app" / "src" / "todo" / "__init__.py").write_text("WHO = 'todo'\n")
    (slug / "app" / "Procfile").write_text("web: gunicorn todo:app\n")
    venv = root / "slugs" / "todo" / "venvs" / "3f2a9c" if reused_venv else slug / "venv"
    bin_dir = venv / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(HOST_PYTHON)
    (bin_dir / "python3").symlink_to("python")
    (bin_dir / "python3.12").symlink_to("python")
    (venv / "pyvenv.cfg").write_text("home = /opt/pythons/3.12.4/bin\nimplementation = CPython\nuv = 0.5.1\n"
                                     "version_info = 3.12.4\ninclude-system-site-packages = false\n")
    (bin_dir / "gunicorn").write_bytes(f"#!{venv}/bin/python\n".encode() + SCRIPT_BODY)
    (bin_dir / "gunicorn").chmod(0o755)
    (bin_dir / "long").write_bytes(f"#!/bin/sh\n'''exec' '{venv}/bin/python' \"$0\" \"$@\"\n' '''\n".encode()
                                   + SCRIPT_BODY)
    (bin_dir / "anywhere").write_bytes(b"#!/usr/bin/env python3\nprint('hi')\n")
    (bin_dir / "activate").write_text(f"VIRTUAL_ENV='{venv}'\n")
    site = venv / "lib" / "python3.12" / "site-packages"
    site.mkdir(parents=True)
    (site / "__editable__.todo-0.1.pth").write_text(f"{slug}/app/src\n")
    (site / "distutils-precedence.pth").write_text("import os; os.environ.get('X')\n")
    if reused_venv:
        (slug / "venv").symlink_to(venv)  # as the build links a reused venv: an absolute path
    return slug


def members(archive: SlugArchive) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(archive.path) as tar:
        return {m.name: (m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()}


@pytest.mark.parametrize("reused_venv", [True, False])
def test_the_venv_is_moved_to_the_slug_root_and_the_image_python(tmp_path, reused_venv):
    slug = make_slug(tmp_path, reused_venv)
    found = members(pack_slug(slug, tmp_path / "slug.tar.gz"))
    for name in ("python", "python3", "python3.12"):
        link, _ = found[f"venv/bin/{name}"]
        assert link.issym() and link.linkname == "/usr/local/bin/python3.12"
    assert found["venv/bin/gunicorn"][1] == b"#!/slug/venv/bin/python\n" + SCRIPT_BODY
    assert found["venv/bin/gunicorn"][0].mode == 0o755
    long = found["venv/bin/long"][1]
    assert long == b"#!/bin/sh\n'''exec' '/slug/venv/bin/python' \"$0\" \"$@\"\n' '''\n" + SCRIPT_BODY
    assert found["venv/bin/anywhere"][1] == b"#!/usr/bin/env python3\nprint('hi')\n"
    cfg = found["venv/pyvenv.cfg"][1].decode().splitlines()
    assert cfg[0] == "home = /usr/local/bin" and "version_info = 3.12.4" in cfg
    site = "venv/lib/python3.12/site-packages"
    assert found[f"{site}/__editable__.todo-0.1.pth"][1] == b"/slug/app/src\n"  # uv sync's editable project
    assert found[f"{site}/distutils-precedence.pth"][1] == b"import os; os.environ.get('X')\n"
    assert found["app/src/todo/__init__.py"][1] == b"WHO = 'todo'\n"
    assert found["venv"][0].isdir()  # the venv link's contents, under venv/
    assert slug_python(slug) == "3.12"


def test_a_given_python_and_slug_root(tmp_path):
    slug = make_slug(tmp_path)
    found = members(pack_slug(slug, tmp_path / "a.tar.gz", slug_root="/srv/slug", python="/usr/bin/python3"))
    assert found["venv/bin/python3.12"][0].linkname == "/usr/bin/python3"  # no minor named: the caller's word
    assert found["venv/bin/gunicorn"][1].startswith(b"#!/srv/slug/venv/bin/python\n")
    assert found["venv/pyvenv.cfg"][1].startswith(b"home = /usr/bin\n")
    with pytest.raises(DeployError, match="built for Python 3.12") as refused:
        pack_slug(slug, tmp_path / "b.tar.gz", python="/usr/local/bin/python3.13")
    assert "python:3.12" in refused.value.hint
    assert not (tmp_path / "b.tar.gz").exists()
    for root in ("slug", "/slug/../etc", "/sl ug", "/slug'", "/"):
        with pytest.raises(InvalidInput):
            pack_slug(slug, tmp_path / "c.tar.gz", slug_root=root)


def test_a_tenants_tree_is_packed_without_following_links_or_reading_special_files(tmp_path):
    slug = make_slug(tmp_path)
    secret = tmp_path / "root-only"
    secret.write_bytes(b"TOP-SECRET-BYTES")
    secret.chmod(0o600)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "other.txt").write_bytes(b"NOT-THE-SLUGS")
    app = slug / "app"
    (app / "leak").symlink_to(secret)
    (app / "up").symlink_to("../../..")
    (app / "dirlink").symlink_to(outside)
    os.mkfifo(app / "pipe")
    (app / "run").write_bytes(b"#!/bin/sh\n")
    (app / "run").chmod(0o6777)
    (app / "locked").mkdir(mode=0o500)

    archive = pack_slug(slug, tmp_path / "slug.tar.gz")
    found = members(archive)
    assert found["app/leak"][0].issym() and found["app/leak"][0].linkname == str(secret)
    assert found["app/up"][0].linkname == "../../.." and found["app/dirlink"][0].issym()
    assert not any(name.startswith("app/dirlink/") for name in found)
    assert "app/pipe" not in found
    assert found["app/run"][0].mode == 0o755  # no setuid, setgid or group/other write
    assert found["app/locked"][0].mode == 0o700  # the fetch can always extract into it
    raw = gzip.decompress(archive.path.read_bytes())
    assert b"TOP-SECRET-BYTES" not in raw and b"NOT-THE-SLUGS" not in raw
    for name, (info, _) in found.items():
        assert not name.startswith("/") and ".." not in name.split("/")
        assert name.split("/")[0] in ("app", "venv")
        assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", "")
        assert not info.mode & (stat.S_ISUID | stat.S_ISGID)
    with tarfile.open(archive.path) as tar:  # as the fetch unpacks it
        tar.extractall(tmp_path / "pod", filter="tar")
    assert os.readlink(tmp_path / "pod/app/leak") == str(secret)


def test_links_out_of_the_slug_are_refused(tmp_path):
    slug = make_slug(tmp_path)
    (slug / "venv").unlink()
    (slug / "venv").symlink_to("/usr")  # a build may replace its own venv with any link
    with pytest.raises(DeployError, match="outside the app's virtualenvs"):
        pack_slug(slug, tmp_path / "a.tar.gz")
    (slug / "venv").unlink()
    (slug / "venv").symlink_to(tmp_path / "slugs/todo/venvs/3f2a9c")
    real_app = tmp_path / "real-app"
    (slug / "app").rename(real_app)
    (slug / "app").symlink_to(real_app)
    with pytest.raises(DeployError, match="no app and venv"):
        pack_slug(slug, tmp_path / "a.tar.gz")
    assert not (tmp_path / "a.tar.gz").exists()


def test_too_deep_a_tree_is_refused(tmp_path):
    slug = make_slug(tmp_path)
    deep = slug / "app"
    for _ in range(slug_archive.MAX_DEPTH + 1):
        deep = deep / "d"
    deep.mkdir(parents=True)
    with pytest.raises(DeployError, match="nested deeper"):
        pack_slug(slug, tmp_path / "a.tar.gz")


def test_the_same_slug_packs_to_the_same_bytes(tmp_path):
    slug = make_slug(tmp_path)
    first, second = pack_slug(slug, tmp_path / "1.tar.gz"), pack_slug(slug, tmp_path / "2.tar.gz")
    assert first.sha256 == second.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()
    assert first.size == first.path.stat().st_size
    names = list(members(first))
    assert names[:3] == ["app", "app/Procfile", "app/src"] and names.index("venv") > names.index("app/src/todo")
    bin_names = [n.rsplit("/", 1)[1] for n in names if n.startswith("venv/bin/")]
    assert bin_names == sorted(bin_names)
    (slug / "app" / "Procfile").write_text("web: gunicorn other:app\n")
    assert pack_slug(slug, tmp_path / "3.tar.gz").sha256 != first.sha256


def test_a_releases_archive_is_made_once(tmp_path, monkeypatch):
    slug = make_slug(tmp_path)
    cache = tmp_path / "cache"
    calls = []
    real_pack = slug_archive.pack_slug

    def counting(*args, **kwargs):
        calls.append(args)
        return real_pack(*args, **kwargs)

    monkeypatch.setattr(slug_archive, "pack_slug", counting)
    first = archive_for(slug, cache)
    assert archive_for(slug, cache) == first and len(calls) == 1
    assert first.path.parent == cache / "todo" and first.path.name.startswith(slug.name)
    assert first.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()
    assert sorted(p.name for p in first.path.parent.iterdir()) == [first.path.name, first.path.name + ".lock",
                                                                 first.path.name + ".sha256"]
    assert stat.S_IMODE((cache / "todo").stat().st_mode) == 0o700
    (first.path.parent / (first.path.name + ".sha256")).unlink()  # its digest lost: packed again, the same
    assert archive_for(slug, cache) == first and len(calls) == 2
    other_root = archive_for(slug, cache, slug_root="/app-slug")  # another layout: another archive
    assert other_root.path != first.path and len(calls) == 3

    def crashing(slug_dir, out, **kwargs):
        out.write_bytes(b"half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(slug_archive, "pack_slug", crashing)
    with pytest.raises(OSError):
        archive_for(slug, cache, python="/usr/local/bin/python3.12")
    assert sorted(p.name for p in (cache / "todo").iterdir() if p.name.endswith(".tar.gz")) == \
        sorted([first.path.name, other_root.path.name])
    with pytest.raises(InvalidInput):
        archive_for(tmp_path / ".." / "x", cache)


def test_shebangs_only_of_the_venv_move():
    venvs = (b"/data/slugs/a/venvs/abc",)
    assert relocate_shebang(b"#!/data/slugs/a/venvs/abc/bin/python3.12 -E\nx", venvs, b"/slug/venv") == \
        b"#!/slug/venv/bin/python3.12 -E\nx"
    for head in (b"#!/data/slugs/a/venvs/abcd/bin/python\n", b"#!/usr/bin/python3\n", b"print(1)\n", b"",
                 b"#!/bin/sh\n'''exec' '/usr/bin/python3' \"$0\" \"$@\"\n' '''\n"):
        assert relocate_shebang(head, venvs, b"/slug/venv") == head


def test_slug_tokens():
    secret = os.urandom(32)
    token = slug_token(secret, "todo", 7)
    expected = hmac.new(secret, b"shipyard-slug\0todo\x007", hashlib.sha256).hexdigest()
    assert token == expected and len(token) == 64
    assert token_matches(secret, "todo", 7, token)
    assert not token_matches(secret, "todo", 8, token)
    assert not token_matches(secret, "todo2", 7, token)
    assert not token_matches(os.urandom(32), "todo", 7, token)
    assert not token_matches(secret, "todo", 7, "") and not token_matches(secret, "todo", 7, "é" * 64)
    assert slug_token(secret, "a", 11) != slug_token(secret, "a1", 1)
    with pytest.raises(InvalidInput):
        slug_token(b"short", "todo", 7)


def test_the_fetch_is_given_the_platform_ca_only_when_asked():
    release = KubeRelease(app="todo", version=3, image="python:3.12-slim", slug_url="https://slugs/todo/v3.tar.gz",
                          slug_token="t", process_types={"web": "gunicorn app:app"},
                          hostnames=(Hostname("todo.example.com"),))
    assert slug_secret(release)["stringData"] == {"token": "t"}
    assert "SLUG_CA" not in [e["name"] for e in fetch_env(release)]
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert slug_secret(release, ca_pem=pem)["stringData"] == {"token": "t", CA_KEY: pem}
    [ca] = [e for e in fetch_env(release, with_ca=True) if e["name"] == "SLUG_CA"]
    assert ca["valueFrom"]["secretKeyRef"] == {"name": slug_secret(release)["metadata"]["name"], "key": "ca.crt",
                                               "optional": True}


def test_a_member_that_shrinks_while_packed_fails_the_pack(tmp_path):
    body = slug_archive._Body(b"head", os.open(os.devnull, os.O_RDONLY), 10)
    try:
        with pytest.raises(DeployError, match="changed while"):
            body.read(14)
    finally:
        os.close(body.fd)
    assert slug_archive._Body(b"abc", -1, 0).read(2) == b"ab"
