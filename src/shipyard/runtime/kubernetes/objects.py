"""A release and its formation as the Kubernetes objects that run it, in the order they are applied.

Three stages, because the release phase must succeed before anything serving changes:

1. `foundation_objects`: the app's namespace, service account, NetworkPolicies and the release's Secrets;
2. `release_phase_job`: the release command (None when there is none); the applier waits for it to succeed
   and stops there if it fails, so the previous release keeps serving, as locally;
3. `runtime_objects`: Deployments, the web Service and Ingress, a PodDisruptionBudget, the autoscaler.

Objects are plain dicts, as `kubectl apply` takes them. Objects of process types that left the Procfile are
not rendered at all: the applier prunes what carries the app's labels but is not in the list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipyard.runtime.kubernetes.autoscaling import web_scaling
from shipyard.runtime.kubernetes.model import KubeObject, KubeRelease
from shipyard.runtime.kubernetes.names import (
    files_secret_name,
    DOMAIN,
    SERVICE_ACCOUNT,
    WEB,
    app_labels,
    config_secret_name,
    release_annotations,
)
from shipyard.runtime.kubernetes.network import ingress, network_policies, service
from shipyard.runtime.kubernetes.pods import file_keys
from shipyard.runtime.kubernetes.slug import slug_secret
from shipyard.runtime.kubernetes.workloads import deployments, pod_disruption_budget, release_phase_job

# The buildpack's generated start commands bind loopback (the local edge connects there); kubelet's probes
# and the Service connect to the pod's own address.
_LOOPBACK_BIND = re.compile(r"(--bind[= ]|-b ?)(127\.0\.0\.1|localhost|\[::1\]):")


def namespace(release: KubeRelease) -> KubeObject:
    labels = {**app_labels(release.app), f"{DOMAIN}/app": release.app}
    # The "restricted" Pod Security Standard: the API server itself refuses a pod that is not confined as
    # pods.py confines them, whatever later renders it.
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = "restricted"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": release.namespace, "labels": labels}}


def service_account(release: KubeRelease) -> KubeObject:
    # Apps never talk to the Kubernetes API: no token in their pods, and no Role bound to this account.
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": release.namespace, "labels": app_labels(release.app)},
            "automountServiceAccountToken": False}


def config_secret(release: KubeRelease) -> KubeObject:
    """Config vars and add-on credentials: read through envFrom, never written into a pod template, so they
    are not in the Deployment, its ReplicaSets or `kubectl describe`."""
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": config_secret_name(release.version), "namespace": release.namespace,
                         "labels": app_labels(release.app), "annotations": release_annotations(release.version)},
            "type": "Opaque", "immutable": True, "stringData": dict(sorted(release.config.items()))}


def files_secret(release: KubeRelease) -> KubeObject | None:
    """The shared files (pods.file_mounts puts each at its path): a Secret, as a CA certificate is not secret
    but the file list is per release and immutable like the rest."""
    if not release.files:
        return None
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": files_secret_name(release.version), "namespace": release.namespace,
                         "labels": app_labels(release.app), "annotations": release_annotations(release.version)},
            "type": "Opaque", "immutable": True, "stringData": file_keys(release)}


def foundation_objects(release: KubeRelease) -> list[KubeObject]:
    files = files_secret(release)
    return [namespace(release), service_account(release), *network_policies(release), config_secret(release),
            slug_secret(release, ca_pem=release.slug_ca), *([files] if files else [])]


def runtime_objects(release: KubeRelease) -> list[KubeObject]:
    scaling = web_scaling(release)
    optional = [service(release), ingress(release), pod_disruption_budget(release, scaling.min_replicas),
                scaling.autoscaler]
    return [*deployments(release, scaling.autoscaler is not None), *(o for o in optional if o is not None)]


def notes(release: KubeRelease) -> list[str]:
    """What the objects do differently from what the release asked for, said once to the user."""
    said = []
    if scaled := web_scaling(release).note:
        said.append(scaled)
    web = release.process_types.get(WEB, "")
    if _LOOPBACK_BIND.search(web):
        said.append(f"{release.app}: web's command `{web}` listens on loopback only; on Kubernetes it must listen "
                    f"on 0.0.0.0:$PORT for its health checks and the Service to reach it.")
    return said


@dataclass(frozen=True)
class Rendered:
    foundation: list[KubeObject]
    release_job: KubeObject | None
    runtime: list[KubeObject]
    notes: list[str]


def render(release: KubeRelease) -> Rendered:
    return Rendered(foundation_objects(release), release_phase_job(release), runtime_objects(release),
                    notes(release))


def release_objects(release: KubeRelease) -> list[KubeObject]:
    """Everything, in apply order (the Job between the stages: wait for it before applying what follows)."""
    rendered = render(release)
    job = [rendered.release_job] if rendered.release_job else []
    return [*rendered.foundation, *job, *rendered.runtime]
