"""What the tenant sandbox costs an instance's start: spawn → listening on $PORT, with and without it.

Both run tests/apps/flask-hello under gunicorn from the same virtualenv (made with uv in the run, .pyc
compiled), through the platform's own `runtime.shell.spawn`: once unconfined (bash, as before), once
confined (bubblewrap, own uid, overlay, cgroup with the small size's limits). Rounds alternate so both see
the same machine. Needs root. Usage: python bench/sandbox.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shipyard.proc import find_binary, free_port, stop_process  # noqa: E402
from shipyard.runtime.confinement import Confinement  # noqa: E402
from shipyard.runtime.shell import spawn  # noqa: E402
from shipyard.runtime.spec import InstanceSpec  # noqa: E402

UID = 199_000  # outside the platform's ranges: the bench runs beside a platform without touching its apps
SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "apps" / "flask-hello"


def make_slug(root: Path) -> Path:
    slug = root / "slug"
    shutil.copytree(SAMPLE, slug / "app")
    uv = str(find_binary("uv", "uv"))
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(slug / "venv")], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(slug / "venv" / "bin" / "python"),
                    "flask", "gunicorn"], check=True)
    # Both start from bytecode, as slugs do (the build compiles the app's modules).
    subprocess.run([str(slug / "venv" / "bin" / "python"), "-m", "compileall", "-qq", str(slug / "app")], check=True)
    for folder, _, files in os.walk(root):
        os.chown(folder, UID, UID)
        for name in files:
            os.chown(os.path.join(folder, name), UID, UID, follow_symlinks=False)
    os.chmod(root, 0o755)
    return slug


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def start_to_listen(slug: Path, confinement: Confinement, prefix: Path) -> float:
    port = free_port()
    spec = InstanceSpec(app="bench", release=1, process_type="web", index=1, uid=UID,
                        command="gunicorn --bind 127.0.0.1:$PORT --workers 2 app:app", cwd=slug / "app",
                        read_only=(slug, prefix))
    env = {"PATH": f"{slug / 'venv' / 'bin'}:/usr/bin:/bin", "PORT": str(port), "HOME": str(slug / "app"),
           "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
    started = time.perf_counter()
    spawned = await spawn(spec, env, confinement)
    while not listening(port):
        if spawned.proc.returncode is not None:
            raise SystemExit(f"gunicorn exited with {spawned.proc.returncode}")
        await asyncio.sleep(0.002)
    elapsed = time.perf_counter() - started
    await stop_process(spawned.proc, grace=5)
    await spawned.cleanup()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("The sandbox needs root.")
    sandboxed = Confinement.detect("shipyard-bench", UID)
    if not sandboxed.sandboxed:
        raise SystemExit(f"No sandbox here: {sandboxed.layers}")
    unconfined = Confinement(bwrap=None, cgroups=None, layers=[])
    prefix = Path(sys.executable).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as tmp:
        slug = make_slug(Path(tmp))
        no_limits = Confinement(bwrap=sandboxed.bwrap, cgroups=None, layers=[])
        plain, confined, sandbox_only = [], [], []
        await start_to_listen(slug, unconfined, prefix)  # warm the page cache for both
        for _ in range(args.rounds):
            plain.append(await start_to_listen(slug, unconfined, prefix))
            confined.append(await start_to_listen(slug, sandboxed, prefix))
            sandbox_only.append(await start_to_listen(slug, no_limits, prefix))
    sandboxed.close()  # its cgroups, and their folder, gone
    p_plain, p_confined = statistics.median(plain), statistics.median(confined)
    print(f"instance start → listening, median of {args.rounds} (flask-hello, gunicorn, 2 workers):")
    print(f"  unconfined (bash):                       {p_plain * 1000:6.1f} ms")
    print(f"  sandboxed (bwrap + uid + overlay + cgroup): {p_confined * 1000:6.1f} ms")
    print(f"  of which without the cgroup:             {statistics.median(sandbox_only) * 1000:6.1f} ms")
    print(f"  added by the sandbox:                    {(p_confined - p_plain) * 1000:+6.1f} ms  (goal: ≤ 20 ms)")


if __name__ == "__main__":
    asyncio.run(main())
