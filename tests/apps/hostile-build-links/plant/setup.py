"""Run by uv while it installs this local package (as the build uid): plant symlinks wherever the platform
(root) writes once the install is done: the venv's complete mark, the slug's manifest, the slug's venv link,
the default assemble script's folder, and the generated requirements of a later Pipfile.lock build.

HOSTILE_TARGETS (a build-time config var) says where each link points: `name=path` pairs separated by `;`.
Had the platform followed them, it would truncate or overwrite root's files, or put a `.pth` file (run at
every interpreter start) into its own virtualenv. What was planted is written to planted.txt in the app.
"""

import os
import re
from pathlib import Path

from setuptools import setup

targets = dict(pair.split("=", 1) for pair in os.environ.get("HOSTILE_TARGETS", "").split(";") if pair)
mounts = [Path(line.split()[4]) for line in Path("/proc/self/mountinfo").read_text().splitlines()]
venvs = next(m for m in mounts if m.name == "venvs")
slug = next(m for m in mounts if m.parent == venvs.parent and re.fullmatch(r"\d+-[0-9a-f]+", m.name))
new_venvs = [v for v in venvs.iterdir() if v.is_dir() and not v.is_symlink() and os.access(v, os.W_OK)]
plants = {slug / "manifest.json": targets.get("manifest"), slug / ".s2i-default": targets.get("folder"),
          slug / "venv": targets.get("folder"),
          venvs / "requirements-from-Pipfile-lock.txt": targets.get("pth")}
plants.update({venv / ".shipyard-complete": targets.get("complete") for venv in new_venvs})
done = []
for link, target in plants.items():
    if not target:
        continue
    try:
        if link.is_symlink() or link.is_file():
            link.unlink()
        link.symlink_to(target)
        done.append(f"planted {link.name}")
    except OSError as exc:
        done.append(f"could not plant {link.name}: {type(exc).__name__}")
(slug / "app" / "planted.txt").write_text("\n".join(done) + "\n")

setup(name="plant", version="1.0", py_modules=[])
