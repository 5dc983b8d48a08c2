"""A local package whose build writes a lot, as compiling a large extension or fetching model files does: on a
nearly full disk, it stops with "No space left on device" (errno 28)."""

from setuptools import setup

with open("build-output.bin", "wb") as out:
    block = b"\0" * (1024 * 1024)
    for _ in range(400):
        out.write(block)

setup(name="fatpkg", version="1.0", py_modules=[])
