"""Run as the build command of a build that then fails: try to change what the live release runs (the
data.txt this slug shares with the previous one, and the live release's virtualenv), then exit 1."""

import os
import shutil
import sys
from pathlib import Path

venv = Path(os.environ.get("LIVE_VENV") or os.environ["VIRTUAL_ENV"])  # the live release's, by its path
flask_init = next(venv.glob("lib/python*/site-packages/flask/__init__.py"))


def attempt(name, action):
    try:
        action()
        print(f"HOSTILE {name}: DONE")
    except OSError as exc:
        print(f"HOSTILE {name}: refused ({type(exc).__name__})")


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


attempt("append to the shared data.txt", lambda: append("data.txt", "tampered data\n"))
attempt("chmod the shared data.txt", lambda: os.chmod("data.txt", 0o666))
attempt("append to the venv's flask", lambda: append(flask_init, "\nTAMPERED = True\n"))
attempt("add a file to the venv", lambda: Path(venv / "lib" / "evil.pth").write_text("import os\n"))
attempt("rename the venv", lambda: os.rename(venv, str(venv) + ".old"))
attempt("delete the venv's flask", lambda: shutil.rmtree(flask_init.parent))
sys.exit(1)
