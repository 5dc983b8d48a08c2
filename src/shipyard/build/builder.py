"""The first builder: detect → copy source → venv with uv → manifest, streaming a Heroku-style log."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from shipyard.build.detect import FILES_OF_INTEREST, StartCommand, needs_gunicorn, process_types, resolve_start_command
from shipyard.build.manifest import Manifest
from shipyard.errors import BuildError
from shipyard.proc import die_with_parent, find_binary

Log = Callable[[str], Awaitable[None]]
INDENT = "       "


@dataclass(frozen=True)
class Slug:
    path: Path  # path/"app" (source), path/"venv", path/"manifest.json"
    manifest: Manifest


@dataclass(frozen=True)
class Detection:
    files: dict[str, str]
    start: StartCommand
    add_gunicorn: bool


def read_files(source_dir: Path) -> dict[str, str]:
    return {name: (source_dir / name).read_text(errors="replace")
            for name in FILES_OF_INTEREST if (source_dir / name).is_file()}


def detect(files: Mapping[str, str], env: Mapping[str, str]) -> Detection:
    if "requirements.txt" not in files:
        raise BuildError("No requirements.txt at the root of your repository.",
                         hint="Add a requirements.txt listing your app's dependencies (e.g. `flask` and `gunicorn`).")
    start = resolve_start_command(files, env)
    return Detection(dict(files), start, needs_gunicorn(files["requirements.txt"]))


def base_python() -> Path:
    """The interpreter Shipyard runs on, outside any virtualenv (uv builds app venvs from it)."""
    return Path(getattr(sys, "_base_executable", None) or sys.executable).resolve()


def copy_source(source_dir: Path, dest: Path) -> None:
    shutil.copytree(source_dir, dest, symlinks=True, ignore=shutil.ignore_patterns(".git"))


async def run_logged(argv: list[str], env: dict[str, str], cwd: Path, log: Log) -> tuple[int, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
    assert proc.stdout is not None
    lines: list[str] = []
    async for raw in proc.stdout:
        line = raw.decode("utf-8", errors="replace").rstrip()
        lines.append(line)
        await log(INDENT + line)
    return await proc.wait(), lines


def uv_env(uv_cache_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    clean = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(uv_cache_dir.parent), "UV_CACHE_DIR": str(uv_cache_dir),
             "NO_COLOR": "1", "UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never", "LANG": "C.UTF-8"}
    for name in ("SSL_CERT_FILE", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL"):
        if name in os.environ:
            clean[name] = os.environ[name]
    if env.get("PIP_INDEX_URL"):
        clean["UV_INDEX_URL"] = env["PIP_INDEX_URL"]
    return clean


def summarize_uv_failure(lines: list[str]) -> str:
    """One line naming what failed, from uv's output."""
    text = [re.sub(r"^[\s×╰─▶│]+", "", line).strip() for line in lines]
    for i, line in enumerate(lines):
        if "╰─▶" in line or line.lstrip().startswith("cause:"):
            return shorten(text[i].removeprefix("cause:").strip())
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("error:", "×")):
            following = next((t for t in text[i + 1:] if t), "")
            base = text[i].removeprefix("error:").strip()
            return shorten(f"{base} {following}" if base.endswith(":") else base)
    return shorten(next((t for t in reversed(text) if t), "uv failed without saying why"))


def shorten(text: str, limit: int = 220) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def install(slug_dir: Path, detection: Detection, uv_cache_dir: Path, env: Mapping[str, str], log: Log) -> str:
    uv = str(find_binary("uv", "uv"))
    environ = uv_env(uv_cache_dir, env)
    venv = slug_dir / "venv"
    code, lines = await run_logged([uv, "venv", "--quiet", "--python", str(base_python()), str(venv)],
                                   environ, slug_dir, log)
    if code != 0:
        raise BuildError(f"Could not create the virtualenv: {summarize_uv_failure(lines)}")
    python = venv / "bin" / "python"
    if detection.add_gunicorn:
        await log("-----> Adding gunicorn (not in requirements.txt)")
    await log("-----> Installing requirements with uv")
    argv = [uv, "pip", "install", "--python", str(python), "-r", "requirements.txt"]
    code, lines = await run_logged(argv + (["gunicorn"] if detection.add_gunicorn else []),
                                   environ, slug_dir / "app", log)
    if code != 0:
        raise BuildError(f"Could not install requirements.txt: {summarize_uv_failure(lines)}",
                         hint="Fix requirements.txt and push again. The full output of uv is above.")
    version = (venv / "pyvenv.cfg").read_text()
    match = re.search(r"^version(?:_info)?\s*=\s*(\S+)", version, re.MULTILINE)
    return match.group(1) if match else "unknown"


async def build_slug(source_dir: Path, slug_dir: Path, *, uv_cache_dir: Path, env: Mapping[str, str],
                     log: Log) -> Slug:
    started = time.monotonic()
    detection = detect(read_files(source_dir), env)
    await log("-----> Python app detected")
    await log(f"-----> Using start command from {detection.start.rule}: {detection.start.command}")
    slug_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        copy_source(source_dir, slug_dir / "app")
        python = await install(slug_dir, detection, uv_cache_dir, env, log)
        digest = hashlib.sha256(detection.files["requirements.txt"].encode() + python.encode()).hexdigest()
        manifest = Manifest(process_types=process_types(detection.files, detection.start),
                            start_rule=detection.start.rule, python=python, requirements_digest=digest)
        (slug_dir / "manifest.json").write_text(manifest.to_json())
    except BaseException:
        shutil.rmtree(slug_dir, ignore_errors=True)
        raise
    await log(f"-----> Build succeeded ({time.monotonic() - started:.1f} s)")
    return Slug(slug_dir, manifest)
