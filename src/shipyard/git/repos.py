"""A bare repository per app, with the pre-receive hook that deploys what is pushed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HOOK = """#!/bin/sh
# Installed by Shipyard: builds and releases the pushed branch while the push waits.
exec '{python}' -m shipyard.git.hook
"""


class Repos:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, app: str) -> Path:
        return self.root / f"{app}.git"

    def create(self, app: str) -> Path:
        repo = self.path(app)
        if not repo.exists():
            repo.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(repo)], check=True)
            for key, value in (("http.receivepack", "true"), ("receive.denyNonFastForwards", "false"),
                               ("core.logAllRefUpdates", "false")):
                subprocess.run(["git", "-C", str(repo), "config", key, value], check=True)
        self.install_hook(app)
        return repo

    def install_hook(self, app: str) -> None:
        """(Re)write the hook: it names the interpreter Shipyard runs on, which may move between installs."""
        hook = self.path(app) / "hooks" / "pre-receive"
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(HOOK.format(python=sys.executable))
        hook.chmod(0o755)

    def delete(self, app: str) -> None:
        shutil.rmtree(self.path(app), ignore_errors=True)
