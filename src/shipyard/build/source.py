"""Copying the pushed source into the slug: only changed files are copied, the rest are hardlinked.

Slugs are immutable (nothing writes into one after its build), so an unchanged
file can be shared with the previous slug instead of copied.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Copied:
    changed: int
    linked: int


def copy_source(source: Path, dest: Path, previous: Path | None) -> Copied:
    changed = linked = 0
    for root, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if not (root == str(source) and d == ".git")]
        rel = Path(root).relative_to(source)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in dirs:
            if (Path(root) / name).is_symlink():
                os.symlink(os.readlink(Path(root) / name), dest / rel / name)
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
        for name in files:
            src, out = Path(root) / name, dest / rel / name
            if src.is_symlink():
                os.symlink(os.readlink(src), out)
                continue
            old = previous / rel / name if previous else None
            if old is not None and old.is_file() and not old.is_symlink() and same_file(src, old):
                os.link(old, out)
                linked += 1
            else:
                shutil.copy2(src, out)
                changed += 1
    return Copied(changed, linked)


def same_file(a: Path, b: Path) -> bool:
    sa, sb = a.stat(), b.stat()
    return sa.st_size == sb.st_size and (sa.st_mode & 0o111) == (sb.st_mode & 0o111) and filecmp.cmp(a, b, shallow=False)
