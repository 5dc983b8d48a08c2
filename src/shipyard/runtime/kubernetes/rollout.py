"""A release onto the cluster, as the local backend rolls one out: the foundation, then the release command's
Job (its failure changes nothing serving), then the Deployments until live, the previous release put back if
they fail; then what the release no longer has is pruned."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shipyard.errors import DeployError
from shipyard.runtime.kubernetes.cluster import (POLL, Say, apply, apply_one, delete, describe, list_objects, pods,
                                                 quiet, tail, wait_job, wait_rollouts)
from shipyard.runtime.kubernetes.model import KubeObject, KubeRelease
from shipyard.runtime.kubernetes.names import MANAGED_BY, process_name
from shipyard.runtime.kubernetes.objects import Rendered, render
from shipyard.runtime.kubernetes.workloads import FETCH_ALLOWANCE

if TYPE_CHECKING:
    from lightkube import AsyncClient


RELEASE_OUTPUT_LINES = 1000  # of a release command that succeeded: what a migration prints, bounded

# What `prune` may delete: every kind the renderer makes inside an app's namespace, except the release Jobs
# (they expire by themselves, ttlSecondsAfterFinished) and the namespace and service account (kept for life).
PRUNABLE = (("apps/v1", "Deployment"), ("v1", "Service"), ("networking.k8s.io/v1", "Ingress"),
            ("networking.k8s.io/v1", "NetworkPolicy"), ("policy/v1", "PodDisruptionBudget"),
            ("autoscaling/v2", "HorizontalPodAutoscaler"), ("v1", "Secret"), ("keda.sh/v1alpha1", "ScaledObject"))


def _key(obj: KubeObject) -> tuple[str, str, str]:
    return obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else "", obj["kind"], obj["metadata"]["name"]


async def prune(client: AsyncClient, namespace: str, app: str, desired: Sequence[KubeObject]) -> list[str]:
    """Delete what Shipyard made for the app and the desired objects no longer have (a process type that
    left the Procfile, an autoscaler switched off, the previous release's Secrets); returns what went."""
    keep = {_key(o) for o in desired}
    labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/managed-by": MANAGED_BY}
    gone = []
    for api_version, kind in PRUNABLE:
        for live in await list_objects(client, api_version, kind, namespace, labels):
            live = {**live, "apiVersion": api_version, "kind": kind}
            if _key(live) not in keep:
                await delete(client, live)
                gone.append(describe(live))
    return gone


async def deploy(client: AsyncClient, release: KubeRelease, previous: KubeRelease | None = None,
                 say: Say = quiet, poll: float = POLL, release_output: Say = quiet) -> Rendered:
    """A release, as locally: foundation, then the release command (its failure changes nothing serving; its
    output goes to `release_output` line by line), then the Deployments until live; a rollout that fails puts
    `previous` back; what is left over is pruned."""
    rendered = render(release)
    for note in rendered.notes:
        await say(f"-----> {note}")
    await apply(client, rendered.foundation)
    if rendered.release_job is not None:
        await say(f"-----> Running release command: {release.release_phase_command}")
        await apply_one(client, rendered.release_job)
        # The Job's own activeDeadlineSeconds stops it first, with the clearer message; this is the backstop.
        await wait_job(client, rendered.release_job, release.release_timeout + FETCH_ALLOWANCE, poll, say)
        job = rendered.release_job["metadata"]
        for pod in await pods(client, job["namespace"], {"job-name": job["name"]}):
            for line in await tail(client, job["namespace"], pod["metadata"]["name"], process_name("release"),
                                   RELEASE_OUTPUT_LINES):
                await release_output(line)
        await say("-----> Release command succeeded")
    applied = await apply(client, rendered.runtime)
    try:
        await wait_rollouts(client, applied, release.boot_timeout + FETCH_ALLOWANCE, poll, say)
    except DeployError:
        if previous is not None:
            await say(f"-----> Putting v{previous.version} back")
            before = render(previous)
            await apply(client, before.runtime)
            # A process type only the failed release has would crash-loop on.
            await prune(client, release.namespace, release.app, [*before.foundation, *before.runtime])
        raise
    for gone in await prune(client, release.namespace, release.app, [*rendered.foundation, *rendered.runtime]):
        await say(f"       removed {gone}")
    await say(f"-----> v{release.version} is live at {release.external_url}")
    return rendered
