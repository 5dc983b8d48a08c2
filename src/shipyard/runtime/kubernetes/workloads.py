"""What runs a release: a Deployment per process type, a Job for the release phase, a PodDisruptionBudget."""

from __future__ import annotations

from typing import Any

from shipyard.runtime.kubernetes import probes
from shipyard.runtime.kubernetes.model import KubeObject, KubeRelease
from shipyard.runtime.kubernetes.names import (
    WEB,
    app_labels,
    pod_labels,
    process_name,
    release_annotations,
    release_job_name,
    selector_labels,
)
from shipyard.runtime.kubernetes.pods import pod_template

# Time a new pod gets beyond the app's boot timeout before a rollout counts as failed: pulling the runner
# image and fetching the slug.
FETCH_ALLOWANCE = 120
# Shipyard's rollbacks are new releases rendered again, never `kubectl rollout undo`: old ReplicaSets are
# kept only to show in `kubectl rollout history`.
REVISIONS_KEPT = 2
# Long enough to read a finished release phase's status and log, short enough not to pile up Jobs.
JOB_KEPT_FOR = 3600


def deployment(release: KubeRelease, process_type: str, replicas: int | None) -> KubeObject:
    """`replicas` None: an autoscaler owns the count, and an apply that named one would reset it."""
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(release.app, process_type)},
        # Zero downtime: a new pod must be ready before an old one goes, one at a time.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "minReadySeconds": probes.min_ready_seconds() if process_type == WEB else 0,
        "progressDeadlineSeconds": release.boot_seconds + FETCH_ALLOWANCE,
        "revisionHistoryLimit": REVISIONS_KEPT,
        "template": pod_template(release, process_type, release.process_types[process_type], "Always"),
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    # What `kubectl rollout history` shows for each revision.
    cause = {"kubernetes.io/change-cause": f"shipyard release v{release.version}"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": process_name(process_type), "namespace": release.namespace,
                         "labels": pod_labels(release.app, process_type, release.version),
                         "annotations": {**release_annotations(release.version, process_type), **cause}},
            "spec": spec}


def deployments(release: KubeRelease, web_autoscaled: bool) -> list[KubeObject]:
    return [deployment(release, process_type,
                       None if process_type == WEB and web_autoscaled else release.count(process_type))
            for process_type in release.running_types]


def release_phase_job(release: KubeRelease) -> KubeObject | None:
    """The release command, once, in the release's own pod template: it must succeed before any Deployment
    changes (the applier waits for it), and a failure is final, as locally (no retries)."""
    command = release.release_phase_command
    if not command:
        return None
    template = pod_template(release, "release", command, "Never")
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": release_job_name(release.version), "namespace": release.namespace,
                         "labels": pod_labels(release.app, "release", release.version),
                         "annotations": release_annotations(release.version, "release")},
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": release.release_timeout,
                     "ttlSecondsAfterFinished": JOB_KEPT_FOR, "template": template}}


def pod_disruption_budget(release: KubeRelease, web_replicas: int) -> KubeObject | None:
    """Node drains take web pods one at a time once there are two or more: one always serves."""
    if WEB not in release.running_types or web_replicas < 2:
        return None
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": process_name(WEB), "namespace": release.namespace,
                         "labels": app_labels(release.app)},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(release.app, WEB)},
                     # A crash-looping pod serves nothing: a drain may evict it whatever the budget says.
                     "unhealthyPodEvictionPolicy": "AlwaysAllow"}}


RESTARTED_AT = "shipyard.dev/restarted-at"
ONE_OFF = "one-off"  # the process type one-off pods are labelled with: no Deployment selects them


def one_off_job(release: KubeRelease, command: str, name: str) -> KubeObject:
    """`shipyard run`: the command once, in the release's pod template, as the release phase runs."""
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": release.namespace,
                         "labels": pod_labels(release.app, ONE_OFF, release.version),
                         "annotations": release_annotations(release.version, ONE_OFF)},
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": release.release_timeout,
                     "ttlSecondsAfterFinished": JOB_KEPT_FOR,
                     "template": pod_template(release, ONE_OFF, command, "Never")}}


def restart_patch(release: KubeRelease, process_type: str, at: str) -> KubeObject:
    """What `shipyard restart` applies (as a field manager of its own, so the release's fields stay): a new
    pod template annotation, which rolls the Deployment's pods over, health-gated, as `kubectl rollout
    restart` does."""
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": process_name(process_type), "namespace": release.namespace},
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}}
