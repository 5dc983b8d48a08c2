"""Names and labels of an app's Kubernetes objects.

Each app has a namespace of its own, so names inside it need no app prefix: the web Deployment is `web`,
release 7's config Secret `config-v7`. Procfile types may hold capitals and underscores (`[A-Za-z0-9_-]+`),
which Kubernetes names may not; `process_name` maps them to DNS-1123 labels deterministically.
"""

from __future__ import annotations

import hashlib
import re

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# Short enough that any object or label value built from it (`release-v…`, pod names' hash suffixes) stays
# under 63 characters.
_TYPE_MAX = 24
_SLUG_MAX = 16

# Label and annotation keys of Shipyard's own: `.internal` is reserved for private use, so no real domain
# (and no other tool's keys) can clash with it.
DOMAIN = "shipyard.internal"
RELEASE_ANNOTATION = f"{DOMAIN}/release"
PROCESS_TYPE_ANNOTATION = f"{DOMAIN}/process-type"
MANAGED_BY = "shipyard"


def process_name(process_type: str) -> str:
    """The Kubernetes name of a process type: unchanged when it is already a short DNS label (`web`,
    `worker`), otherwise lowercased, with runs of other characters as one dash, and a hash of the original so
    that `my_worker`, `My-Worker` and `my-worker` stay three names."""
    if DNS_LABEL.fullmatch(process_type) and len(process_type) <= _TYPE_MAX:
        return process_type
    readable = re.sub(r"[^a-z0-9]+", "-", process_type.lower())[:_SLUG_MAX].strip("-")
    digest = hashlib.sha256(process_type.encode()).hexdigest()[:6]
    return f"{readable or 'type'}-{digest}"


def app_labels(app: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/managed-by": MANAGED_BY}


def selector_labels(app: str, process_type: str) -> dict[str, str]:
    """What a Deployment selects its pods by: never the release, since a selector cannot change."""
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/component": process_name(process_type)}


def pod_labels(app: str, process_type: str, version: int) -> dict[str, str]:
    return {**app_labels(app), **selector_labels(app, process_type), "app.kubernetes.io/version": f"v{version}"}


def release_annotations(version: int, process_type: str | None = None) -> dict[str, str]:
    annotations = {RELEASE_ANNOTATION: f"v{version}"}
    if process_type is not None:
        annotations[PROCESS_TYPE_ANNOTATION] = process_type  # the Procfile's own spelling
    return annotations


# Per-release Secrets: a release is immutable (slug + config), so its Secrets are too, and pods of the
# previous release keep reading their own while a rollout replaces them.
def config_secret_name(version: int) -> str:
    return f"config-v{version}"


def slug_secret_name(version: int) -> str:
    return f"slug-v{version}"


def files_secret_name(version: int) -> str:
    return f"files-v{version}"


def tls_secret_name(hostname: str) -> str:
    """Where cert-manager keeps a hostname's certificate (Secret names may hold dots, up to 253 characters: a
    longer name keeps its start and a hash of the whole)."""
    name = f"tls-{hostname.lower()}"
    if len(name) <= 253:
        return name
    return f"{name[:240].rstrip('.-')}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def release_job_name(version: int) -> str:
    return f"release-v{version}"


SERVICE_ACCOUNT = "app"
WEB = "web"
