"""A pod's web container run as the runner image would run it, for the fake cluster's tests: what no API server
fake can show is whether the slug the init container fetched really serves.

python:3.X-slim is emulated with bubblewrap: the host's own CPython of that minor at /usr/local (where the
image keeps its Python, so /usr/local/bin/python3.X, which the packed venv links to, is it), the host's system
(/usr, /etc) read-only (readOnlyRootFilesystem), the fetched slug at /slug read-only with its `app/` writable,
a fresh /tmp, the shared files at their paths, and the pod's uid. The container's own command runs with its
own environment (Secrets resolved), in a network namespace of its own with only loopback; its readiness
probe (the exec of bash) is run there too until it passes, then one GET of `path` is printed.
"""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.buildpack.python import discover_interpreters
from shipyard.proc import bwrap_system_args, crossable_parents, find_bwrap

from .fake_kubelet import unliteral

MARK = "=== answer ==="


@dataclass
class Served:
    returncode: int  # 0: the probe passed and the GET answered
    answer: str  # what the GET printed: the status line, then the body
    output: str  # everything else the container and the probe printed


def host_python(minor: str) -> Path | None:
    """A CPython install of that 3.X on this machine (its prefix: pyenv's, where builds find it too), laid out
    as python:3.X-slim's /usr/local: bin/python3.X, lib/python3.X."""
    for interpreter in discover_interpreters():
        prefix = interpreter.path.resolve().parent.parent
        if f"{interpreter.version.major}.{interpreter.version.minor}" == minor and \
                not prefix.is_relative_to("/usr") and (prefix / "lib" / f"python{minor}").is_dir():
            return prefix
    return None


def secret_data(objects: dict[str, dict[str, Any]], namespace: str, name: str) -> dict[str, str]:
    secret = objects.get(f"/api/v1/namespaces/{namespace}/secrets/{name}") or {}
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def container_env(objects: dict[str, dict[str, Any]], namespace: str, container: dict[str, Any],
                  pod_name: str) -> dict[str, str]:
    """envFrom first, then env over it (kubelet's order), values as kubelet expands them."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= secret_data(objects, namespace, source["secretRef"]["name"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = unliteral(item["value"])
        elif "fieldRef" in item.get("valueFrom", {}):
            env[item["name"]] = pod_name
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secret_data(objects, namespace, ref["name"])[ref["key"]]
    return env


def serve_once(objects: dict[str, dict[str, Any]], namespace: str, pod: dict[str, Any], slug: Path,
               python: Path, path: str = "/", timeout: float = 90) -> Served:
    spec = pod["spec"]
    container = spec["containers"][0]
    env = container_env(objects, namespace, container, "web-fake-pod")
    uid = container["securityContext"]["runAsUser"]
    scratch = slug.parent / f"{slug.name}-files"
    scratch.mkdir(exist_ok=True)
    binds: list[str] = []
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret and "subPath" in mount:
            copy = scratch / mount["subPath"]
            copy.write_text(secret_data(objects, namespace, secret["secretName"])[mount["subPath"]])
            binds += ["--ro-bind", str(copy), mount["mountPath"]]
    shutil.chown(slug / "app", uid, uid)
    for inside in (slug / "app").rglob("*"):
        os.lchown(inside, uid, uid)
    probe = shlex.join(unliteral(part) for part in container["readinessProbe"]["exec"]["command"])
    get = (f'{shlex.quote(env["VIRTUAL_ENV"])}/bin/python -c "import os, urllib.request as u\n'
           f'r = u.urlopen(u.Request(\'http://127.0.0.1:\' + os.environ[\'PORT\'] + {path!r}))\n'
           f'print(r.status); print(r.read().decode())"')
    script = (f"/bin/bash -c -- {shlex.quote(unliteral(container['command'][-1]))} &\n"
              f"app=$!\n"
              f"for _ in $(seq {int(timeout * 5)}); do\n"
              f"  if {probe}; then echo {shlex.quote(MARK)}; {get}; code=$?; kill $app; wait $app; exit $code; fi\n"
              f"  kill -0 $app 2>/dev/null || {{ echo 'the container exited'; exit 3; }}\n"
              f"  sleep 0.2\n"
              f"done\n"
              f"echo 'the readiness probe never passed'; kill $app; exit 4\n")
    # Also at its own path: a pyenv build finds its libpython there (its RUNPATH), where the image's is in
    # /usr/local/lib, which the dynamic loader searches anyway.
    argv = [str(find_bwrap()), *bwrap_system_args(), "--ro-bind", str(python), "/usr/local",
            *crossable_parents(PurePosixPath(python), set()), "--ro-bind", str(python), str(python),
            "--ro-bind", str(slug), "/slug", "--bind", str(slug / "app"), "/slug/app", "--tmpfs", "/tmp",
            "--proc", "/proc", "--dev", "/dev", "--unshare-net", "--unshare-pid", "--die-with-parent", *binds,
            "--chdir", container["workingDir"], "--", "/usr/bin/env", "-i",
            *(f"{k}={v}" for k, v in env.items()),
            "/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "/bin/bash", "-c", script]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 30, check=False)
    before, _, answer = done.stdout.partition(MARK + "\n")
    return Served(done.returncode, answer, before + done.stderr)
