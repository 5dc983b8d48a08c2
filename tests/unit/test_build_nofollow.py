"""Root never reads or writes through a link a build or a pushed repository planted."""

import os
from pathlib import Path

import pytest

from shipyard.buildpack import nofollow
from shipyard.buildpack.builder import read_files
from shipyard.buildpack.preflight import SourceFile, check_files, python_sources, scan_tree
from shipyard.buildpack.steps import default_assemble_script


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text("TOKEN-123")
    return path


def test_reads_refuse_a_link_anywhere_on_the_way(tmp_path: Path, secret: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "real").mkdir(parents=True)
    (repo / "real" / "f.txt").write_text("ok")
    (repo / "file-link").symlink_to(secret)
    (repo / "dir-link").symlink_to(tmp_path)
    assert nofollow.read_text(repo, "real/f.txt") == "ok"
    for rel in ("file-link", "dir-link/secret"):
        with pytest.raises(nofollow.SymlinkRefused):
            nofollow.read_text(repo, rel)
    with pytest.raises(FileNotFoundError):
        nofollow.read_text(repo, "real")  # not a regular file
    os.mkfifo(repo / "fifo")
    with pytest.raises(FileNotFoundError):  # and no hang on a FIFO
        nofollow.read_text(repo, "fifo")
    with pytest.raises(ValueError):
        nofollow.read_text(repo, "../secret")
    assert nofollow.lstat(repo, "dir-link/secret") is None and nofollow.is_file(repo, "real/f.txt")


def test_detection_skips_linked_files_and_says_which(tmp_path: Path, secret: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "mysite").mkdir(parents=True)
    (repo / ".python-version").symlink_to(secret)
    (repo / "requirements.txt").write_text("flask\n")
    (repo / "manage.py").write_text('os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")\n')
    (repo / "mysite" / "settings.py").symlink_to(secret)
    files, links = read_files(repo)
    assert set(files) == {"requirements.txt", "manage.py"}
    assert sorted(links) == [".python-version", "mysite/settings.py"]
    assert "TOKEN-123" not in str(files)


def test_preflight_names_links_without_following_them(tmp_path: Path, secret: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "a.py").write_text("A = 'sqlite:///x'\n")
    (repo / "inside.py").symlink_to("pkg/a.py")
    (repo / "out.py").symlink_to(secret)
    (repo / "sneaky").symlink_to("pkg/../../secret")
    (repo / "linked-dir").symlink_to(tmp_path)
    (repo / ".git").mkdir()
    (repo / ".git" / "HEAD").write_text("x")
    tree = scan_tree(repo)
    assert [f.path for f in tree] == ["inside.py", "linked-dir", "out.py", "pkg/a.py", "sneaky"]
    links = {f.path: f.link_target for f in tree if f.is_link}
    assert links == {"inside.py": None, "out.py": str(secret), "sneaky": "pkg/../../secret",
                     "linked-dir": str(tmp_path)}
    assert python_sources(repo, tree) == {"pkg/a.py": "A = 'sqlite:///x'\n"}
    assert {f.message.split()[0] for f in check_files(tree)} == {"out.py", "sneaky", "linked-dir"}
    assert check_files([SourceFile("ok.py", 10)]) == []


def test_writes_replace_a_planted_link_and_leave_its_target(tmp_path: Path, secret: Path) -> None:
    folder = tmp_path / "slug"
    folder.mkdir()
    (folder / "manifest.json").symlink_to(secret)
    nofollow.write_new(folder, "manifest.json", b"{}", mode=0o644)
    assert secret.read_text() == "TOKEN-123"
    assert not (folder / "manifest.json").is_symlink() and (folder / "manifest.json").read_text() == "{}"
    assert (folder / "manifest.json").stat().st_mode & 0o777 == 0o644
    (folder / "venv").mkdir()
    (folder / "venv" / "x").write_text("build's")
    nofollow.symlink_new(folder, "venv", "/elsewhere")
    assert os.readlink(folder / "venv") == "/elsewhere"
    with pytest.raises(nofollow.SymlinkRefused):
        nofollow.open_dir(folder, "venv")


def test_default_assemble_script_goes_where_it_is_told(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    script = default_assemble_script(inputs / "s2i", ["uv", "pip", "install", "-r", "requirements.txt"])
    assert script == inputs / "s2i" / "assemble" and os.access(script, os.X_OK)
    assert "exec uv pip install -r requirements.txt" in script.read_text()
