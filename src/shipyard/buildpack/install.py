"""The install step: a virtualenv made with uv from the app's dependency manifest, reused when unchanged."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shipyard.buildpack import nofollow
from shipyard.buildpack.dependencies import DependencyPlan
from shipyard.buildpack.python import Interpreter
from shipyard.buildpack.runner import Log, Runner
from shipyard.errors import BuildError
from shipyard.proc import find_binary

COMPLETE = ".shipyard-complete"
# Packages a generated start command needs, by the executable or module that proves they are there.
SERVER_PACKAGES = {"gunicorn": "gunicorn", "uvicorn_worker": "uvicorn-worker", "uvicorn": "uvicorn"}


@dataclass(frozen=True)
class Venv:
    path: Path
    reused: bool


def uv_env(uv_cache_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    """A clean environment for uv: the platform's own variables stay out of builds."""
    clean = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(uv_cache_dir.parent), "UV_CACHE_DIR": str(uv_cache_dir),
             "NO_COLOR": "1", "UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never", "LANG": "C.UTF-8",
             # Instances see their venv read-only, so bytecode they compiled would be lost at every start:
             # compiled once here, an app boots 2.5-3.5x faster (see the facts on waking idle apps).
             "UV_COMPILE_BYTECODE": "1"}
    for name in ("SSL_CERT_FILE", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL"):
        if name in os.environ:
            clean[name] = os.environ[name]
    clean.update({k: v for k, v in env.items() if k not in clean})  # build-time config vars
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


def venv_digest(plan: DependencyPlan, manifest_texts: Mapping[str, str], python: Interpreter,
                servers: tuple[str, ...], env: Mapping[str, str]) -> str:
    """What a reusable venv depends on: the manifests, the interpreter, the added servers, the index."""
    h = hashlib.sha256()
    for part in ("bytecode", plan.kind, str(python.version), str(python.path), ",".join(servers),
                 env.get("PIP_INDEX_URL", ""),
                 env.get("PIP_UPGRADE", ""), *plan.requirements,
                 *(f"{k}\0{v}" for k, v in sorted(manifest_texts.items()))):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:24]


def install_argv(uv: str, plan: DependencyPlan, python: Path, generated: Path | None,
                 env: Mapping[str, str]) -> list[str]:
    upgrade = ["--upgrade"] if env.get("PIP_UPGRADE") else []
    if plan.kind == "uv.lock":
        return [uv, "sync", "--frozen", "--no-dev", "--python", str(python)]
    if plan.kind == "requirements.txt":
        return [uv, "pip", "install", *upgrade, "--python", str(python), "-r", "requirements.txt"]
    if generated is not None:
        return [uv, "pip", "install", *upgrade, "--python", str(python), "-r", str(generated)]
    if plan.kind == "pyproject.toml" and not plan.installs_project:
        return [uv, "pip", "install", *upgrade, "--python", str(python), "-r", "pyproject.toml"]
    return [uv, "pip", "install", *upgrade, "--python", str(python), "-e", "."]


async def create_venv(venv: Path, interpreter: Interpreter, environ: Mapping[str, str], log: Log, run: Runner,
                      seed: bool = False) -> None:
    uv = str(find_binary("uv", "uv"))
    argv = [uv, "venv", "--quiet", *(["--seed"] if seed else []), "--python", str(interpreter.path), str(venv)]
    code, lines = await run(argv, environ, venv.parent, log)
    if code != 0:
        raise BuildError(f"Could not create a virtualenv with Python {interpreter.version}: "
                         f"{summarize_uv_failure(lines)}", hint="Pin another Python version (runtime.txt).")


async def install_dependencies(venv: Path, app_dir: Path, plan: DependencyPlan, environ: Mapping[str, str],
                               log: Log, run: Runner, inputs_dir: Path) -> None:
    """inputs_dir: the platform's folder for this build (root's, read-only in the sandbox): never a folder the
    build can write, where a link it planted would take root's write elsewhere."""
    uv = str(find_binary("uv", "uv"))
    generated = None
    if plan.requirements:
        generated = inputs_dir / f"requirements-from-{plan.kind.replace('.', '-')}.txt"
        nofollow.write_new(inputs_dir, generated.name, ("\n".join(plan.requirements) + "\n").encode())
    env = dict(environ)
    if plan.kind == "uv.lock":
        env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    code, lines = await run(install_argv(uv, plan, venv / "bin" / "python", generated, env), env, app_dir, log)
    if code != 0:
        raise BuildError(f"Could not install {plan.kind}: {summarize_uv_failure(lines)}",
                         hint=f"Fix {plan.kind} and push again. The full output of uv is above.")
    if generated is not None and plan.installs_project:
        argv = [uv, "pip", "install", "--python", str(venv / "bin" / "python"), "--no-deps", "-e", "."]
        code, lines = await run(argv, env, app_dir, log)
        if code != 0:
            raise BuildError(f"Could not install your project: {summarize_uv_failure(lines)}",
                             hint="Fix pyproject.toml, or set `package-mode = false` under [tool.poetry].")


def missing_servers(venv: Path, servers: tuple[str, ...]) -> list[str]:
    """Looked up without following links: the venv was written by the build."""
    try:
        with nofollow.opened_dir(venv, "lib") as fd:
            pythons = [name for name in os.listdir(fd) if name.startswith("python")]
    except (FileNotFoundError, nofollow.SymlinkRefused):
        pythons = []
    missing = []
    for module in servers:
        if module == "gunicorn" and nofollow.is_file(venv, "bin/gunicorn"):
            continue
        if module != "gunicorn" and any(nofollow.is_dir(venv, f"lib/{p}/site-packages/{module}") for p in pythons):
            continue
        missing.append(SERVER_PACKAGES[module])
    return missing


async def add_servers(venv: Path, app_dir: Path, servers: tuple[str, ...], environ: Mapping[str, str],
                      log: Log, run: Runner) -> None:
    missing = missing_servers(venv, servers)
    if not missing:
        return
    await log(f"-----> Adding {', '.join(missing)} (your start command needs it and your dependencies don't list it)")
    uv = str(find_binary("uv", "uv"))
    code, lines = await run([uv, "pip", "install", "--python", str(venv / "bin" / "python"), *missing],
                            environ, app_dir, log)
    if code != 0:
        raise BuildError(f"Could not install {', '.join(missing)}: {summarize_uv_failure(lines)}")


def reusable_venv(venvs_dir: Path, digest: str, frozen_uid: int | None) -> Path | None:
    """The venv an earlier successful build made for this digest: a real folder, frozen (owned by frozen_uid,
    which no build can chown to) and marked complete by root. Anything else there (a build that died half-way,
    or one a rejected build made up for a digest it guessed) is removed."""
    venv = venvs_dir / digest
    st = nofollow.lstat(venvs_dir, digest)
    marker = nofollow.lstat(venvs_dir, f"{digest}/{COMPLETE}")
    if (st is not None and stat.S_ISDIR(st.st_mode) and marker is not None and stat.S_ISREG(marker.st_mode)
            and (frozen_uid is None or (st.st_uid == frozen_uid and marker.st_uid == 0))):
        return venv
    if st is not None:
        with nofollow.opened_dir(venvs_dir) as fd:
            nofollow.remove(fd, digest)
    return None


def mark_complete(venv: Path) -> None:
    """Written by root once the venv is frozen; a link the build planted there is replaced, never followed."""
    nofollow.write_new(venv, COMPLETE, b"")
