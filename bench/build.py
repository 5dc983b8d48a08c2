"""Build times of the sample apps, and uv against pip on the same requirements, in one run.

Usage: python bench/build.py
Prints: flask-hello first build and code-only rebuild (venv reused), the Django sample's first build
with a cold and a warm uv cache, and a plain `python -m venv` + `pip install -r` of the Django
sample's requirements next to uv's (cold and warm cache). As root, also sandboxed builds as the
platform runs them (build uid, per-app uv cache, frozen slugs): a new app's first build (its own
cache is cold) against the same build with the app's warm cache (what a shared cache would give),
and a code-only redeploy.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shipyard.buildpack.builder import BuildRequest, build_slug, inspect_source  # noqa: E402
from shipyard.buildpack.python import discover_interpreters  # noqa: E402
from shipyard.proc import find_binary  # noqa: E402

APPS = ROOT / "tests" / "apps"


async def quiet(line: str) -> None:
    pass


async def timed_build(work: Path, sample: Path, n: int, cache: Path, interpreters,  # type: ignore[no-untyped-def]
                      sandboxed: bool = False, previous: Path | None = None) -> float:
    started = time.perf_counter()
    uids = {"build_uid": BUILD_UID, "runtime_uid": RUNTIME_UID, "scratch_dir": work / "tmp"} if sandboxed else {}
    request = BuildRequest(source_dir=sample, slug_dir=work / "slugs" / f"{n}", venvs_dir=work / "venvs",
                           uv_cache_dir=cache, interpreters=interpreters, previous_slug=previous, **uids)
    await build_slug(request, await inspect_source(request, quiet), quiet)
    return time.perf_counter() - started


BUILD_UID, RUNTIME_UID = 399_970, 399_971  # unused by any platform's apps (their bases are far apart)


async def sandboxed_builds(work: Path, interpreters) -> None:  # type: ignore[no-untyped-def]
    """The platform's way: each app has its own uv cache, so a new app's first build starts cold."""
    for sample in ("flask-hello", "django-static"):
        app = work / f"sandboxed-{sample}"
        cold = await timed_build(app, APPS / sample, 1, app / "cache", interpreters, sandboxed=True)
        shutil.rmtree(app / "venvs")
        warm = await timed_build(app, APPS / sample, 2, app / "cache", interpreters, sandboxed=True)
        print(f"{sample} sandboxed first build, per-app cache cold: {cold:.2f} s; warm: {warm:.2f} s "
              f"(+{cold - warm:.2f} s for a new app)")
    app = work / "sandboxed-flask-hello"
    source = work / "flask-hello-redeploy"
    shutil.copytree(APPS / "flask-hello", source)
    times = []
    for n in range(3, 8):
        (source / "app.py").write_text((source / "app.py").read_text() + f"\n# change {n}\n")
        times.append(await timed_build(app, source, n, app / "cache", interpreters, sandboxed=True,
                                       previous=app / "slugs" / f"{n - 1}"))
    print(f"flask-hello sandboxed code-only rebuild: median {sorted(times)[len(times) // 2] * 1000:.0f} ms "
          f"(venv reused, unchanged files hardlinked, slug frozen)")


def timed(argv: list[str], **kwargs) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, **kwargs)
    return time.perf_counter() - started


async def main() -> None:
    interpreters = discover_interpreters()
    python = interpreters[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = work / "uv-cache"
        source = work / "flask-hello"
        shutil.copytree(APPS / "flask-hello", source)
        first = await timed_build(work / "flask", source, 1, cache, interpreters)
        (source / "app.py").write_text((source / "app.py").read_text() + "\n# a code change\n")
        rebuild = await timed_build(work / "flask", source, 2, cache, interpreters)
        print(f"Python used: {python.version}")
        print(f"flask-hello first build:               {first:.2f} s")
        print(f"flask-hello code-only rebuild:         {rebuild:.3f} s  (goal < 1 s; the virtualenv is reused)")

        django_cache = work / "uv-cache-django"
        cold = await timed_build(work / "django", APPS / "django-static", 1, django_cache, interpreters)
        shutil.rmtree(work / "django" / "venvs")
        warm = await timed_build(work / "django", APPS / "django-static", 2, django_cache, interpreters)
        print(f"django-static first build, cold cache: {cold:.2f} s  (goal < 15 s)")
        print(f"django-static first build, warm cache: {warm:.2f} s")

        requirements = APPS / "django-static" / "requirements.txt"
        pip_time = timed([str(python.path), "-m", "venv", str(work / "pip-venv")])
        pip_time += timed([str(work / "pip-venv" / "bin" / "pip"), "install", "-q", "--no-cache-dir", "-r",
                           str(requirements)])
        uv = str(find_binary("uv", "uv"))
        uv_cold = timed([uv, "venv", "-q", "--python", str(python.path), str(work / "uv-venv")])
        uv_cold += timed([uv, "pip", "install", "-q", "--python", str(work / "uv-venv" / "bin" / "python"),
                          "--cache-dir", str(work / "uv-cache-2"), "-r", str(requirements)])
        uv_warm = timed([uv, "venv", "-q", "--python", str(python.path), str(work / "uv-venv-2")])
        uv_warm += timed([uv, "pip", "install", "-q", "--python", str(work / "uv-venv-2" / "bin" / "python"),
                          "--cache-dir", str(work / "uv-cache-2"), "-r", str(requirements)])
        print(f"django-static requirements, pip (no cache):  {pip_time:.2f} s")
        print(f"django-static requirements, uv (cold cache): {uv_cold:.2f} s  ({pip_time / uv_cold:.1f}x faster than pip)")
        print(f"django-static requirements, uv (warm cache): {uv_warm:.2f} s  ({pip_time / uv_warm:.1f}x faster than pip)")
        if os.geteuid() == 0:
            await sandboxed_builds(work, interpreters)


if __name__ == "__main__":
    asyncio.run(main())
