"""A setup.py that tries to read what a build must not see (paths from the PROBE_PATHS build-time var)."""

import os
from pathlib import Path

from setuptools import setup

results = []
for target in filter(None, os.environ.get("PROBE_PATHS", "").split(":")):
    path = Path(target)
    try:
        path.read_bytes() if path.is_file() else os.listdir(path)
        results.append(f"{target}: READABLE")
    except OSError as exc:
        results.append(f"{target}: denied ({type(exc).__name__})")
results.append(f"uid={os.getuid()}")
Path("probe.txt").write_text("\n".join(results) + "\n")

setup(name="probe", version="0.1", py_modules=["wsgi"], install_requires=["flask"])
