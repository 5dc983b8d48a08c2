"""The pod every process of a release runs in (web, workers, the release phase): one template, one confinement.

The confinement is the local sandbox's, in Kubernetes' terms, and fits the "restricted" Pod Security
Standard the app's namespace enforces: a fixed non-root uid, no capabilities, no privilege escalation, the
runtime's default seccomp profile, a read-only root filesystem with an emptyDir for /tmp, no service account
token. The slug's venv is read-only, its `app/` directory writable (as the local backend's ephemeral layer:
its writes are lost with the pod).
"""

from __future__ import annotations

import re
from typing import Any

from shipyard.runtime.kubernetes import probes
from shipyard.runtime.kubernetes.model import KubeRelease, quantity
from shipyard.runtime.kubernetes.names import (
    SERVICE_ACCOUNT,
    WEB,
    config_secret_name,
    files_secret_name,
    pod_labels,
    process_name,
    release_annotations,
)
from shipyard.runtime.kubernetes.slug import fetch_command, fetch_env
from shipyard.runtime.limits import Size, web_concurrency

# One uid for every app: each pod is its own sandbox (own namespaces, own filesystem), so uids need not
# differ between apps as they must on one shared host. No passwd entry is needed (USER names the app).
UID = 10001
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"  # the runner image's Python (python:3.x images) is first
SLUG_VOLUME, TMP_VOLUME, FILES_VOLUME = "slug", "tmp", "files"
# emptyDirs count against the node's disk: past these a pod is evicted instead of filling the node.
SLUG_LIMIT, TMP_LIMIT = "4Gi", "1Gi"
# Ingress controllers learn of a terminating pod a moment after kubelet does: the pod keeps serving that
# long before SIGTERM, then gets the local backend's drain grace.
PRE_STOP_SECONDS, DRAIN_GRACE = 5, 10


def literal(text: str) -> str:
    """`text` as kubelet must pass it on. kubelet expands `$(NAME)` in commands and env values and reads `$$`
    as `$`, so those two are escaped; `$PORT` stays as written, for bash."""
    return re.sub(r"\$(?=[$(])", "$$", text)


def resources(size: Size) -> dict[str, Any]:
    # Requests equal to limits: the local cgroup's CPU cap is also its share under contention, and the pod gets
    # the Guaranteed QoS class (evicted last). Kubernetes has no per-pod process cap: size.pids is left to
    # the kubelet's podPidsLimit.
    amount = {"cpu": quantity(size.cpus), "memory": f"{size.memory_mb}Mi"}
    return {"requests": dict(amount), "limits": dict(amount)}


def pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "allowPrivilegeEscalation": False,
            "privileged": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def file_keys(release: KubeRelease) -> dict[str, str]:
    """The shared files as Secret keys (f0, f1, … in path order: a path is no valid key) → their text."""
    return {f"f{index}": release.files[path] for index, path in enumerate(sorted(release.files))}


def volumes(release: KubeRelease) -> list[dict[str, Any]]:
    found = [{"name": SLUG_VOLUME, "emptyDir": {"sizeLimit": SLUG_LIMIT}},
             {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_LIMIT}}]
    if release.files:
        found.append({"name": FILES_VOLUME, "secret": {"secretName": files_secret_name(release.version),
                                                       "defaultMode": 0o444}})
    return found


def _mounts(release: KubeRelease) -> list[dict[str, Any]]:
    # The slug read-only, its app directory writable over it, as the local sandbox's overlay; each shared file
    # read-only at the path the app's config names.
    root = release.slug_root
    return [{"name": SLUG_VOLUME, "mountPath": root, "readOnly": True},
            {"name": SLUG_VOLUME, "mountPath": f"{root}/app", "subPath": "app"},
            {"name": TMP_VOLUME, "mountPath": "/tmp"},
            *({"name": FILES_VOLUME, "mountPath": path, "subPath": f"f{index}", "readOnly": True}
              for index, path in enumerate(sorted(release.files)))]


def environment(release: KubeRelease, process_type: str) -> list[dict[str, Any]]:
    """release.plan.runtime_env's contract for a pod. Config vars come from the release's Secret (envFrom);
    `env` entries win over envFrom, so defaults a user may override are left out when the config sets them,
    and the variables the platform owns are always here."""
    root = release.slug_root
    defaults = {
        "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "USER": release.app, "LOGNAME": release.app,
        "WEB_CONCURRENCY": str(web_concurrency(release.size)),
        "SHIPYARD_APP": release.app, "SHIPYARD_RELEASE": f"v{release.version}",
        "RENDER_EXTERNAL_HOSTNAME": release.hostname, "RENDER_EXTERNAL_URL": release.external_url,
        # Render's `uv run gunicorn …` start commands, if the runner image has uv: the venv as built.
        "UV_PROJECT_ENVIRONMENT": f"{root}/venv", "UV_NO_SYNC": "1", "UV_PYTHON_DOWNLOADS": "never",
        "UV_CACHE_DIR": "/tmp/uv-cache",
    }
    owned = {
        "PATH": f"{root}/venv/bin:{SYSTEM_PATH}", "VIRTUAL_ENV": f"{root}/venv", "HOME": f"{root}/app",
        "PORT": str(release.port),
        "EXTERNAL_HOSTNAME": release.hostname, "EXTERNAL_URL": release.external_url,
        # Locally only the edge on loopback may set X-Forwarded-*. Here the ingress controller's pod addresses
        # are not known in advance, but the NetworkPolicy lets no one else connect: trusting any peer is
        # trusting the controller.
        "FORWARDED_ALLOW_IPS": "*",
        "SHIPYARD_TRUST_PROXY_DEPTH": str(release.cluster.proxy_depth),
    }
    env: list[dict[str, Any]] = [{"name": name, "value": literal(value)} for name, value in defaults.items()
                                 if name not in release.config]
    env += [{"name": name, "value": literal(value)} for name, value in owned.items()]
    # Locally `web.1`; a pod has no index, so its name stands in (`web.web-5d8c7b9f4-x2x9z`).
    env += [{"name": "SHIPYARD_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "SHIPYARD_PROCESS", "value": f"{process_type}.$(SHIPYARD_POD_NAME)"}]
    return env


def app_container(release: KubeRelease, process_type: str, command: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": process_name(process_type), "image": release.image, "imagePullPolicy": "IfNotPresent",
        # As the local backend: bash, so `$PORT` and `${PORT:-8000}` expand.
        "command": ["/bin/bash", "-c", "--", literal(command)],
        "workingDir": f"{release.slug_root}/app",
        "env": environment(release, process_type),
        "envFrom": [{"secretRef": {"name": config_secret_name(release.version)}}],
        "resources": resources(release.size), "securityContext": container_security(),
        "volumeMounts": _mounts(release),
    }
    if process_type == WEB:
        host, path = release.hostname, release.health_path
        container["ports"] = [{"name": "http", "containerPort": release.port, "protocol": "TCP"}]
        container["startupProbe"] = probes.startup_probe(path, host, release.boot_timeout)
        container["readinessProbe"] = probes.readiness_probe(path, host)
        container["livenessProbe"] = probes.liveness_probe(path, host)
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}}
    return container


def fetch_container(release: KubeRelease) -> dict[str, Any]:
    return {"name": "fetch-slug", "image": release.image, "imagePullPolicy": "IfNotPresent",
            "command": [literal(part) for part in fetch_command(release)],
            "env": [{**item, "value": literal(item["value"])} if "value" in item else item
                    for item in fetch_env(release, with_ca=bool(release.slug_ca))],
            "resources": resources(release.size), "securityContext": container_security(),
            "volumeMounts": [{"name": SLUG_VOLUME, "mountPath": release.slug_root}]}


def pod_template(release: KubeRelease, process_type: str, command: str, restart_policy: str) -> dict[str, Any]:
    grace = PRE_STOP_SECONDS + DRAIN_GRACE if process_type == WEB else DRAIN_GRACE
    return {
        "metadata": {"labels": pod_labels(release.app, process_type, release.version),
                     "annotations": release_annotations(release.version, process_type)},
        "spec": {
            "serviceAccountName": SERVICE_ACCOUNT,
            "automountServiceAccountToken": False,
            # No `<SERVICE>_PORT=tcp://…` variables: they leak the namespace's services and shadow config.
            "enableServiceLinks": False,
            "securityContext": pod_security(),
            "initContainers": [fetch_container(release)],
            "containers": [app_container(release, process_type, command)],
            "volumes": volumes(release),
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": grace,
        },
    }
