"""What the cluster's objects say about a release: pure decisions over live objects as the API returns them.

The applier (cluster.py) reads Deployments, Jobs and Pods and asks these functions what they mean, the way
instance.py feeds readiness.py: a rollout is live, still waiting, or failed with a cause and a hint written
for the user, the same ones the local backend gives (`exited with code 1`, `ran out of memory`, `did not
become ready within 60 s`). Nothing here talks to a cluster, so every decision is tested by value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shipyard.runtime.diagnose import DEFAULT_HINT, boot_hint, telling_error
from shipyard.runtime.kubernetes.model import KubeObject
from shipyard.runtime.kubernetes.names import PROCESS_TYPE_ANNOTATION, RELEASE_ANNOTATION

WAITING, LIVE, SUCCEEDED, FAILED = "waiting", "live", "succeeded", "failed"
# Waiting reasons a container does not leave by itself: the rollout fails at once, as a local instance that
# exits while starting does, instead of at the progress deadline minutes later.
STUCK = frozenset({"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
                   "CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
PULL_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName"})
FETCH_CONTAINER = "fetch-slug"  # pods.py's init container
LOG_TAIL_LINES = 20  # as instance.py shows with a failure
RELEASE_HINT = ("Its output is above. Nothing changed: the previous release keeps serving. Fix the command (e.g. "
                "the migration) and push again.")
HEALTH_HINT = ("The web process must listen on 0.0.0.0:$PORT (kubelet's health checks and the Service connect to "
               "the pod's address, not to loopback), and its health path must answer 200–399 (Kubernetes counts "
               "a 404 as a failure where Shipyard's local checks do not): `shipyard apps set {app} --health-path "
               "/health` names a page that does.")


@dataclass(frozen=True)
class Trouble:
    """A container that will not come up by itself, as one pod's status tells it."""

    pod: str
    container: str
    reason: str  # the waiting or termination reason: CrashLoopBackOff, OOMKilled, ErrImagePull …
    exit_code: int | None = None
    message: str = ""  # kubelet's message, or the container's termination message (its last output)


@dataclass(frozen=True)
class Verdict:
    """state: waiting, live (a rollout), succeeded (the release Job) or failed, with why and how to fix it."""

    state: str
    cause: str = ""
    hint: str = ""
    progress: str = ""  # while waiting: what is done so far, for the deploy log
    trouble: Trouble | None = None  # when failed by a container: whose last log lines would tell more


@dataclass(frozen=True)
class InstanceState:
    """One pod as `shipyard ps` shows an instance (api.schemas.InstanceOut's fields)."""

    name: str  # `web.x2x9z`: the process type and the pod name's random suffix
    pod: str
    process_type: str
    release: int
    state: str  # up, starting, crashed, stopping, stopped
    restarts: int
    since: float  # when it entered its state, seconds since the epoch
    last_failure: str = ""
    exit_code: int | None = None


def _at(obj: Mapping[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _condition(obj: KubeObject, kind: str) -> Mapping[str, Any]:
    found = [c for c in _at(obj, "status", "conditions") or () if c.get("type") == kind]
    return found[-1] if found else {}


def timestamp(text: str | None) -> float | None:
    """An RFC 3339 time as the API writes it (`2026-01-02T03:04:05Z`) in seconds since the epoch."""
    return datetime.fromisoformat(text).timestamp() if text else None


def release_of(obj: KubeObject) -> int:
    """The release a pod or pod template belongs to (names.release_annotations, or the version label)."""
    meta = obj.get("metadata") or {}
    text = (meta.get("annotations") or {}).get(RELEASE_ANNOTATION) or \
        (meta.get("labels") or {}).get("app.kubernetes.io/version", "")
    return int(text[1:]) if re.fullmatch(r"v\d+", text) else 0


def process_type_of(obj: KubeObject) -> str:
    meta = obj.get("metadata") or {}
    return (meta.get("annotations") or {}).get(PROCESS_TYPE_ANNOTATION) or \
        (meta.get("labels") or {}).get("app.kubernetes.io/component", "")


def _terminated(status: Mapping[str, Any]) -> Mapping[str, Any]:
    return _at(status, "state", "terminated") or _at(status, "lastState", "terminated") or {}


def _statuses(pod: KubeObject) -> list[Mapping[str, Any]]:
    return [*(_at(pod, "status", "initContainerStatuses") or ()), *(_at(pod, "status", "containerStatuses") or ())]


def container_trouble(pod: KubeObject) -> Trouble | None:
    """The first container (init containers first) that is stuck, crashed or was killed for its memory."""
    name = _at(pod, "metadata", "name") or ""
    for status in _statuses(pod):
        waiting = _at(status, "state", "waiting") or {}
        ended = _terminated(status)
        code = ended.get("exitCode")
        if ended.get("reason") == "OOMKilled" and (waiting or _at(status, "state", "terminated")):
            return Trouble(name, status["name"], "OOMKilled", code, ended.get("message", ""))
        if waiting.get("reason") in STUCK:
            said = ended if waiting["reason"] == "CrashLoopBackOff" else waiting
            return Trouble(name, status["name"], waiting["reason"], code, said.get("message") or "")
        if _at(status, "state", "terminated") and code not in (None, 0):
            return Trouble(name, status["name"], ended.get("reason") or "Error", code, ended.get("message", ""))
    return None


def crashed_while_starting(pod: KubeObject) -> Trouble | None:
    """A pod not ready yet whose container already ended once: locally, an exit before ready fails the deploy
    at once; here kubelet restarts it, and the restart must not hide the crash."""
    if _condition(pod, "Ready").get("status") == "True":
        return None
    for status in _statuses(pod):
        ended = _at(status, "lastState", "terminated")
        if ended:
            return Trouble(_at(pod, "metadata", "name") or "", status["name"], ended.get("reason") or "Error",
                           ended.get("exitCode"), ended.get("message", ""))
    return None


def _spec(pod: KubeObject, container: str) -> Mapping[str, Any]:
    specs = [*(_at(pod, "spec", "initContainers") or ()), *(_at(pod, "spec", "containers") or ())]
    return next((c for c in specs if c.get("name") == container), {})


def _memory_limit(pod: KubeObject, container: str) -> str:
    return _at(_spec(pod, container), "resources", "limits", "memory") or "its limit"


def tail_text(lines: Sequence[str]) -> str:
    """The last lines a process printed, and the exception among them, as instance.py shows them."""
    if not lines:
        return "(the process printed nothing)"
    tail = list(lines)[-LOG_TAIL_LINES:]
    text = f"Its last {len(tail)} log lines:\n" + "\n".join(f"  {line}" for line in tail)
    cause = telling_error(list(lines))
    return f"The error: {cause}\n{text}" if cause and not any(cause in line for line in tail) else text


def explain(trouble: Trouble, pod: KubeObject, who: str, when: str = "before it was ready",
            lines: Sequence[str] = ()) -> tuple[str, str]:
    """(cause, hint) for a stuck or crashed container; `lines`: its last output, when the caller has it."""
    lines = list(lines) or trouble.message.splitlines()
    app = _at(pod, "metadata", "labels", "app.kubernetes.io/name") or "<app>"
    if trouble.reason == "OOMKilled":
        return ((f"{who} ran out of memory: it exceeded its limit of {_memory_limit(pod, trouble.container)} and "
                 "was killed."),
                (f"Give it a bigger size (`shipyard apps set {app} --size medium`), or lower WEB_CONCURRENCY (each "
                 "gunicorn worker loads the app)."))
    if trouble.reason in PULL_REASONS:
        image = _spec(pod, trouble.container).get("image", "")
        return ((f"{who} cannot start: the image {image} could not be pulled ({trouble.reason}: "
                 f"{trouble.message or 'no message'})."),
                ("Check the runner image's name and tag, and that the cluster's nodes may pull it (an "
                 "imagePullSecret for a private registry)."))
    if trouble.reason in ("CreateContainerConfigError", "CreateContainerError", "RunContainerError"):
        return (f"{who} could not be created: {trouble.message or trouble.reason}.",
                ("A Secret the pod reads is missing or the pod spec is refused: the release's foundation objects "
                 "(namespace, Secrets) must be applied before its Deployments and Job."))
    code = "" if trouble.exit_code is None else f" with code {trouble.exit_code}"
    if trouble.container == FETCH_CONTAINER:
        return (f"{who} could not fetch the release's slug (it exited{code}).\n{tail_text(lines)}",
                (("The slug's download did not match its checksum: it changed on the way or on the server; "
                  "deploy again." if any("checksum mismatch" in line for line in lines) else
                  "SHIPYARD_KUBE_SLUG_URL must reach Shipyard's slug server from the cluster's pods (a private "
                  "address also needs SHIPYARD_KUBE_OPEN_EGRESS=1: the NetworkPolicies block private ranges), "
                  "which must accept the release's token; the pods verify it with the platform's CA.")))
    hint = boot_hint(lines)
    if hint == DEFAULT_HINT:  # its 127.0.0.1 is the local edge's; a pod is reached at its own address
        hint = HEALTH_HINT.format(app=app)
    if trouble.exit_code in (0, 137, 143):  # what a process stopped by kubelet (SIGTERM, then SIGKILL) exits with
        when += " (kubelet stops a container whose startup or liveness health check fails)"
    return f"{who} exited{code} {when}.\n{tail_text(lines)}", hint


def _matches(pod: KubeObject, selector: Mapping[str, str]) -> bool:
    labels = _at(pod, "metadata", "labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def progress_mark(deployment: KubeObject) -> tuple[int, int, int, int]:
    """What changes whenever a rollout advances; the applier restarts the deadline's clock when it does."""
    status = deployment.get("status") or {}
    return (status.get("observedGeneration", 0), status.get("updatedReplicas", 0),
            status.get("readyReplicas", 0), status.get("availableReplicas", 0))


def _unscheduled(pod: KubeObject) -> str:
    scheduled = _condition(pod, "PodScheduled")
    if scheduled.get("status") != "False":
        return ""
    return f"not scheduled: {scheduled.get('message', scheduled.get('reason', ''))}".rstrip(".")


def _unready(pods: Sequence[KubeObject]) -> str:
    parts = [f"{_at(pod, 'metadata', 'name')}: "
             f"{_unscheduled(pod) or (_at(pod, 'status', 'phase') or 'Pending') + ', not ready'}"
             for pod in pods if _condition(pod, "Ready").get("status") != "True"]
    return "; ".join(parts)


def rollout_verdict(deployment: KubeObject, expected_generation: int, pods: Sequence[KubeObject] = (), *,
                    now: float, started: float, deadline: float,
                    logs: Mapping[str, Sequence[str]] | None = None) -> Verdict:
    """Is the Deployment's rollout of the generation the apply returned live, failed or still going?

    Live as `kubectl rollout status`: the controller has seen that generation and every replica is updated,
    ready and available, with none of the old ones left. Failed at once when a pod of the new release is
    stuck (CrashLoopBackOff, an image that cannot be pulled, an OOM kill …), when Kubernetes cannot create
    the pods (ReplicaFailure), at its progress deadline, or when nothing advanced for `deadline` seconds since
    `started` (the boot timeout, restarted by the caller whenever `progress_mark` changes). `logs`: pod name →
    its last lines, for the failing pod named by the verdict's `trouble` (a second call once they are read).
    """
    meta, spec, status = (deployment.get(k) or {} for k in ("metadata", "spec", "status"))
    name, template = meta.get("name", "?"), spec.get("template") or {}
    release, process_type = release_of(template) or release_of(deployment), process_type_of(template) or name
    prefix = f"Release v{release} failed: " if release else ""
    late = now - started > deadline
    if status.get("observedGeneration", 0) < expected_generation:
        if late:
            return Verdict(FAILED, f"{prefix}the cluster did not take up Deployment {name}'s change within "
                                   f"{deadline:g} s.", "Is the cluster's controller manager running? "
                                   "(`kubectl get --raw /readyz`)")
        return Verdict(WAITING, progress=f"{name}: waiting for the Deployment controller")
    failure = _condition(deployment, "ReplicaFailure")
    if failure.get("status") == "True":
        return Verdict(FAILED, f"{prefix}Kubernetes could not create {process_type}'s pods: "
                               f"{failure.get('message', failure.get('reason', ''))}",
                       "The namespace enforces the restricted Pod Security Standard and may have a quota: the "
                       "message above names what refused the pod.")
    selector = _at(spec, "selector", "matchLabels") or {}
    ours = [p for p in pods if _matches(p, selector) and release_of(p) == release and
            not _at(p, "metadata", "deletionTimestamp")]
    for pod in ours:
        trouble = container_trouble(pod) or crashed_while_starting(pod)
        if trouble is not None:
            cause, hint = explain(trouble, pod, f"{process_type} (pod {trouble.pod})",
                                  lines=(logs or {}).get(trouble.pod, ()))
            return Verdict(FAILED, prefix + cause, hint, trouble=trouble)
    want = spec.get("replicas", 1)
    counts = [status.get(k, 0) for k in ("updatedReplicas", "readyReplicas", "availableReplicas", "replicas")]
    if counts == [want] * 4:
        return Verdict(LIVE, progress=f"{name}: {want} of {want} pods of v{release} ready")
    ready = sum(_condition(p, "Ready").get("status") == "True" for p in ours)
    progressing = _condition(deployment, "Progressing")
    if late or progressing.get("reason") == "ProgressDeadlineExceeded":
        waited = deadline if late else spec.get("progressDeadlineSeconds", 600)
        unready = _unready(ours)
        return Verdict(FAILED, f"{prefix}{ready} of {want} new {process_type} pods became ready within {waited:g} s."
                               + (f" {unready}." if unready else ""),
                       HEALTH_HINT.format(app=_at(deployment, "metadata", "labels", "app.kubernetes.io/name")
                                          or "<app>"))
    return Verdict(WAITING, progress=f"{name}: {ready} of {want} pods of v{release} ready, "
                                     f"{counts[3] - counts[0]} old left")


def _release_command(job: KubeObject) -> str:
    containers = _at(job, "spec", "template", "spec", "containers") or [{}]
    command = containers[-1].get("command") or [""]
    return command[-1].replace("$$", "$")  # pods.literal's escaping, undone for the user's eyes


def job_verdict(job: KubeObject, pods: Sequence[KubeObject] = (), logs: Sequence[str] = ()) -> Verdict:
    """The release-phase Job: succeeded, failed (with the exit code and the pod's last lines) or waiting.

    A Job's pod that cannot pull its image waits forever rather than failing, so that counts as failed too.
    """
    release, status = release_of(job), job.get("status") or {}
    prefix, command = f"Release v{release} failed: " if release else "", _release_command(job)
    if _condition(job, "Complete").get("status") == "True" or status.get("succeeded", 0) >= 1:
        return Verdict(SUCCEEDED)
    newest = sorted(pods, key=lambda p: _at(p, "metadata", "creationTimestamp") or "")
    trouble = next((t for t in map(container_trouble, reversed(newest)) if t is not None), None)
    failed = _condition(job, "Failed")
    if failed.get("reason") == "DeadlineExceeded":
        limit = _at(job, "spec", "activeDeadlineSeconds")
        return Verdict(FAILED, f"{prefix}the release command `{command}` ran longer than its limit of {limit} s "
                               f"and was stopped.\n{tail_text(logs)}", RELEASE_HINT)
    ended = failed.get("status") == "True" or status.get("failed", 0) >= 1
    if trouble is None and not ended:
        state = (_unscheduled(newest[-1]) or (_at(newest[-1], "status", "phase") or "pending").lower()) if newest \
            else "waiting for its pod"
        return Verdict(WAITING, progress=f"release command: {state}")
    if trouble is None:
        return Verdict(FAILED, f"{prefix}the release command `{command}` failed: "
                               f"{failed.get('message') or failed.get('reason') or 'its pod failed'}.\n"
                               f"{tail_text(logs)}", RELEASE_HINT)
    if trouble.exit_code is not None and trouble.reason != "OOMKilled" and trouble.container != FETCH_CONTAINER:
        return Verdict(FAILED, f"{prefix}the release command `{command}` exited with code {trouble.exit_code}.\n"
                               f"{tail_text(logs or trouble.message.splitlines())}", RELEASE_HINT, trouble=trouble)
    pod = next(p for p in newest if _at(p, "metadata", "name") == trouble.pod)
    cause, hint = explain(trouble, pod, f"The release command `{command}`", "before it finished", logs)
    return Verdict(FAILED, prefix + cause, hint, trouble=trouble)


def _since(pod: KubeObject, state: str, trouble: Trouble | None) -> float:
    meta = pod.get("metadata") or {}
    if state == "stopping":
        grace = meta.get("deletionGracePeriodSeconds") or 0
        return (timestamp(meta["deletionTimestamp"]) or 0.0) - grace  # the API sets it to now + grace
    if state == "crashed" and trouble is not None:
        for status in _statuses(pod):
            if status.get("name") == trouble.container and (finished := _terminated(status).get("finishedAt")):
                return timestamp(finished) or 0.0
    ready = _condition(pod, "Ready").get("lastTransitionTime")
    return timestamp(ready or _at(pod, "status", "startTime") or meta.get("creationTimestamp")) or 0.0


def last_failure(pod: KubeObject, trouble: Trouble | None) -> tuple[str, int | None]:
    """Why the pod's container last stopped, in instance.py's words, and its exit code."""
    if trouble is not None and trouble.reason not in ("CrashLoopBackOff", "OOMKilled", "Error"):
        return f"{trouble.reason}: {trouble.message}".strip(": "), None
    for status in _statuses(pod):
        ended = _terminated(status)
        if not ended or (trouble is not None and status.get("name") != trouble.container) or \
                (trouble is None and status.get("name") == FETCH_CONTAINER):
            continue
        code = ended.get("exitCode")
        if ended.get("reason") == "OOMKilled":
            limit = _memory_limit(pod, status["name"])
            return f"exceeded its memory limit ({limit}) and was restarted (status {code})", code
        line = next((x.strip() for x in reversed(ended.get("message", "").splitlines()) if x.strip()), "")
        fetch = "could not fetch the slug: " if status.get("name") == FETCH_CONTAINER else ""
        return f"{fetch}exited with status {code}" + (f": {line}" if line else ""), code
    return "", None


def instance_state(pod: KubeObject) -> InstanceState:
    meta, phase = pod.get("metadata") or {}, _at(pod, "status", "phase")
    name, process_type = meta.get("name", ""), process_type_of(pod)
    trouble = container_trouble(pod)
    if meta.get("deletionTimestamp"):
        state = "stopping"
    elif phase == "Failed" or trouble is not None:
        state = "crashed"
    elif phase == "Succeeded":
        state = "stopped"
    else:
        state = "up" if _condition(pod, "Ready").get("status") == "True" else "starting"
    failure, code = last_failure(pod, trouble)
    if phase == "Failed" and not failure:
        failure = f"{_at(pod, 'status', 'reason') or 'Failed'}: {_at(pod, 'status', 'message') or ''}".strip(": ")
    restarts = sum(s.get("restartCount", 0) for s in _at(pod, "status", "containerStatuses") or ())
    return InstanceState(f"{process_type}.{name.rsplit('-', 1)[-1]}", name, process_type, release_of(pod), state,
                         restarts, _since(pod, state, trouble), failure, code)


def instance_states(pods: Sequence[KubeObject]) -> list[InstanceState]:
    """The app's pods as `shipyard ps` instances, by process type then age; the release phase's and one-off
    processes' pods are not instances (as locally, they run once and are not listed)."""
    ordered = sorted(pods, key=lambda p: (process_type_of(p), _at(p, "metadata", "creationTimestamp") or "",
                                          _at(p, "metadata", "name") or ""))
    return [instance_state(p) for p in ordered if process_type_of(p) not in RUN_ONCE]


RUN_ONCE = ("release", "one-off")  # workloads.ONE_OFF


WAITING_TO_RUN, RUNNING, EXITED = "waiting", "running", "exited"


def container_phase(pod: KubeObject, container: str) -> tuple[str, int | None, str]:
    """Where one container of a one-off pod is: waiting (scheduling, the image's pull, the slug's fetch),
    running (its log can be followed), or exited, with its exit code; a pod that failed before the container
    started (a slug that could not be fetched, a stuck image) counts as exited, with no code and the reason."""
    status = next((s for s in _at(pod, "status", "containerStatuses") or () if s.get("name") == container), {})
    ended = _at(status, "state", "terminated")
    if ended:
        return EXITED, ended.get("exitCode"), ended.get("reason") or ""
    if _at(status, "state", "running"):
        return RUNNING, None, ""
    trouble = container_trouble(pod)
    if trouble is not None and (trouble.reason in STUCK or trouble.container != container):
        return EXITED, None, f"{trouble.container}: {trouble.reason} {trouble.message}".strip()
    if _at(pod, "status", "phase") == "Failed":
        return EXITED, None, _at(pod, "status", "reason") or "the pod failed"
    return WAITING_TO_RUN, None, ""
