import os

from shipyard.buildpack.source import copy_source


def test_unchanged_files_are_shared_with_the_previous_slug(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref")
    (src / "app.py").write_text("v1")
    (src / "pkg" / "data.txt").write_text("same")
    os.symlink("pkg/data.txt", src / "link")
    first = copy_source(src, tmp_path / "s1", None)
    assert (first.changed, first.linked) == (2, 0)
    (src / "app.py").write_text("v2")
    second = copy_source(src, tmp_path / "s2", tmp_path / "s1")
    assert (second.changed, second.linked) == (1, 1)
    assert (tmp_path / "s2" / "pkg" / "data.txt").stat().st_ino == (tmp_path / "s1" / "pkg" / "data.txt").stat().st_ino
    assert (tmp_path / "s2" / "app.py").read_text() == "v2" and (tmp_path / "s1" / "app.py").read_text() == "v1"
    assert os.readlink(tmp_path / "s2" / "link") == "pkg/data.txt"
    assert not (tmp_path / "s2" / ".git").exists()
