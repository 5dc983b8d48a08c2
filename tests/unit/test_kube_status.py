"""What live Kubernetes objects mean for a release, as values: the Deployments, Job and Pods the API would return
(field names from the API reference: DeploymentStatus, JobStatus, PodStatus' containerStatuses) in, verdicts,
`shipyard ps` rows and apply decisions out. The last part drives cluster.py against a fake API server."""

from __future__ import annotations

import base64
import copy
import json
from datetime import datetime
from typing import Any

import pytest

from shipyard.errors import DeployError
from shipyard.runtime.kubernetes import Hostname, KubeRelease, render
from shipyard.runtime.kubernetes.names import pod_labels, release_annotations
from shipyard.runtime.kubernetes.diff import needs_apply, owned_fields
from shipyard.runtime.kubernetes.status import (
    FAILED,
    LIVE,
    RELEASE_HINT,
    SUCCEEDED,
    WAITING,
    Verdict,
    container_trouble,
    instance_states,
    job_verdict,
    progress_mark,
    rollout_verdict,
    timestamp,
)
from shipyard.runtime.limits import SIZES

T0 = "2026-03-01T10:00:00Z"
T1 = "2026-03-01T10:00:20Z"
T2 = "2026-03-01T10:01:05Z"


def todo(version: int = 7, **overrides: Any) -> KubeRelease:
    """tests/apps/flask-todo: web, worker and a release command."""
    values: dict[str, Any] = {
        "app": "todo", "version": version, "image": "registry.example.com/shipyard/runner:py3.12",
        "slug_url": f"https://slugs.example.com/todo/v{version}.tar.gz", "slug_token": "tok",
        "process_types": {"web": "gunicorn app:app", "worker": "python worker.py", "release": "flask db upgrade"},
        "hostnames": (Hostname("todo.apps.example.com"),), "formation": {"web": 2, "worker": 1},
        "size": SIZES["medium"], "config": {"SECRET_KEY": "s3cret"}, "boot_timeout": 60}
    values.update(overrides)
    return KubeRelease(**values)


def kind(objects: list[dict], name: str, which: str) -> dict:
    return copy.deepcopy(next(o for o in objects if o["kind"] == which and o["metadata"]["name"] == name))


def live_deployment(version: int = 7, generation: int = 4, observed: int | None = None, replicas: int = 2,
                    updated: int = 2, ready: int = 2, available: int = 2, total: int = 2,
                    conditions: list[dict] | None = None, name: str = "web") -> dict:
    deployment = kind(render(todo(version)).runtime, name, "Deployment")
    deployment["spec"]["replicas"] = replicas
    deployment["metadata"] |= {"generation": generation, "uid": "2f6c…", "resourceVersion": "88123"}
    status: dict[str, Any] = {"observedGeneration": generation if observed is None else observed, "replicas": total, "updatedReplicas": updated,
                              "readyReplicas": ready, "availableReplicas": available,
                              "unavailableReplicas": max(0, total - available)}
    deployment["status"] = {k: v for k, v in status.items() if v}  # the API omits zero counts
    deployment["status"]["conditions"] = conditions or [
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
        {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
         "message": 'ReplicaSet "web-5d8c7b9f4" is progressing.'}]
    return deployment


def running(name: str = "web", ready: bool = True, restarts: int = 0, last: dict | None = None) -> dict:
    status: dict[str, Any] = {"name": name, "ready": ready, "restartCount": restarts, "started": True,
                              "image": "registry.example.com/shipyard/runner:py3.12", "imageID": "",
                              "state": {"running": {"startedAt": T1}}}
    if last:
        status["lastState"] = {"terminated": last}
    return status


def waiting(reason: str, message: str = "", name: str = "web", restarts: int = 0, last: dict | None = None) -> dict:
    status = {**running(name, False, restarts), "state": {"waiting": {"reason": reason, "message": message}}}
    status["started"] = False
    if last:
        status["lastState"] = {"terminated": last}
    return status


def exited(code: int, reason: str = "Error", message: str = "", finished: str = T2) -> dict:
    return {"exitCode": code, "reason": reason, "message": message, "startedAt": T1, "finishedAt": finished}


FETCHED = {"name": "fetch-slug", "ready": True, "restartCount": 0, "image": "runner", "imageID": "",
           "state": {"terminated": exited(0, "Completed")}}


def pod(name: str = "web-5d8c7b9f4-x2x9z", version: int = 7, process_type: str = "web", ready: bool = True,
        containers: list[dict] | None = None, init: list[dict] | None = None, phase: str = "Running",
        created: str = T0, **meta: Any) -> dict:
    template = kind(render(todo(version)).runtime, "web", "Deployment")["spec"]["template"]
    conditions = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": T0},
                  {"type": "Initialized", "status": "True", "lastTransitionTime": T1},
                  {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": T2}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shipyard-todo", "creationTimestamp": created,
                         "labels": {**pod_labels("todo", process_type, version), "pod-template-hash": "5d8c7b9f4"},
                         "annotations": release_annotations(version, process_type), **meta},
            "spec": template["spec"],
            "status": {"phase": phase, "startTime": T0, "conditions": conditions,
                       "initContainerStatuses": init if init is not None else [FETCHED],
                       "containerStatuses": containers if containers is not None else [running(ready=ready)]}}


def judge(deployment: dict, pods: list[dict] = (), generation: int = 4, waited: float = 10, **kw: Any):
    return rollout_verdict(deployment, generation, pods, now=1000 + waited, started=1000, deadline=180, **kw)


# rollout_verdict


def test_a_rollout_is_live_once_every_replica_is_updated_ready_and_available() -> None:
    verdict = judge(live_deployment(), [pod(), pod("web-5d8c7b9f4-q7w2e")])
    assert (verdict.state, verdict.cause, verdict.progress) == (LIVE, "", "web: 2 of 2 pods of v7 ready")
    assert judge(live_deployment(generation=5, observed=6), generation=5).state == LIVE


def test_a_status_the_controller_wrote_for_an_earlier_generation_does_not_count() -> None:
    # Right after the apply the status still describes the previous, complete rollout.
    verdict = judge(live_deployment(generation=5, observed=4), generation=5)
    assert (verdict.state, verdict.progress) == (WAITING, "web: waiting for the Deployment controller")
    late = judge(live_deployment(generation=5, observed=4), generation=5, waited=200)
    assert late.state == FAILED and "did not take up Deployment web's change within 180 s" in late.cause


def test_a_rollout_waits_while_old_replicas_are_left_or_new_ones_are_not_available() -> None:
    new = pod("web-7f9d6c5b4-k2j4h", version=8)
    surging = judge(live_deployment(version=8, updated=1, ready=3, available=3, total=3), [pod(), new])
    assert (surging.state, surging.progress) == (WAITING, "web: 1 of 2 pods of v8 ready, 2 old left")
    # Ready but inside minReadySeconds: not available yet.
    assert judge(live_deployment(ready=2, available=1)).state == WAITING


def test_a_process_type_scaled_to_zero_is_live_at_once() -> None:
    worker = live_deployment(name="worker", replicas=0, updated=0, ready=0, available=0, total=0)
    assert judge(worker).state == LIVE


def test_a_new_pod_in_crashloopbackoff_fails_the_rollout_with_its_exit_code_and_last_lines() -> None:
    lines = "Traceback (most recent call last):\n  File \"/slug/app/app.py\", line 9\nModuleNotFoundError: " \
            "No module named 'flask_migrate'"
    crashing = pod("web-7f9d6c5b4-k2j4h", version=8, ready=False, containers=[
        waiting("CrashLoopBackOff", 'back-off 10s restarting failed container=web pod=web-7f9d6c5b4-k2j4h',
                restarts=1, last=exited(1, message=lines))])
    verdict = judge(live_deployment(version=8, generation=5, updated=1, ready=2, available=2, total=3),
                    [pod(), pod("web-5d8c7b9f4-q7w2e"), crashing], generation=5)
    assert verdict.state == FAILED
    assert verdict.cause.splitlines()[0] == ("Release v8 failed: web (pod web-7f9d6c5b4-k2j4h) exited with code 1 "
                                             "before it was ready.")
    assert "  ModuleNotFoundError: No module named 'flask_migrate'" in verdict.cause
    assert verdict.hint.startswith("Python could not import `flask_migrate`")
    assert (verdict.trouble.pod, verdict.trouble.container) == ("web-7f9d6c5b4-k2j4h", "web")
    # With the pod's log read (the termination message is empty unless the app writes one), its lines tell.
    quiet = copy.deepcopy(crashing)
    quiet["status"]["containerStatuses"][0]["lastState"]["terminated"]["message"] = ""
    told = judge(live_deployment(version=8, generation=5, updated=1, ready=2, available=2, total=3), [quiet],
                 generation=5, logs={"web-7f9d6c5b4-k2j4h": ["[INFO] Booting worker", "KeyError: 'SECRET_KEY'"]})
    assert "Its last 2 log lines:\n  [INFO] Booting worker\n  KeyError: 'SECRET_KEY'" in told.cause
    assert "shipyard config set <app> SECRET_KEY=..." in told.hint


def test_pods_of_the_previous_release_crashing_do_not_fail_the_new_rollout() -> None:
    old = pod(ready=False, containers=[waiting("CrashLoopBackOff", restarts=4, last=exited(1))])
    assert judge(live_deployment(version=8, generation=5, updated=1, total=3), [old], generation=5).state == WAITING
    # Nor a new pod that is going away.
    leaving = pod(version=8, ready=False, containers=[waiting("CrashLoopBackOff", last=exited(1))],
                  deletionTimestamp=T2)
    assert judge(live_deployment(version=8, generation=5, updated=1, total=3), [leaving], generation=5).state == WAITING


def test_a_new_pod_that_restarted_before_it_was_ready_fails_the_rollout_even_while_running_again() -> None:
    restarted = pod(version=8, ready=False, containers=[running(ready=False, restarts=1, last=exited(137))])
    verdict = judge(live_deployment(version=8, generation=5, updated=1, total=3), [restarted], generation=5)
    assert verdict.state == FAILED
    assert "exited with code 137 before it was ready (kubelet stops a container whose startup or liveness health " \
           "check fails)." in verdict.cause
    assert "0.0.0.0:$PORT" in verdict.hint and "--health-path" in verdict.hint  # not the local 127.0.0.1 advice
    # Once ready, an earlier restart is history (`shipyard ps` shows it), not a failed rollout.
    assert judge(live_deployment(), [pod(containers=[running(restarts=1, last=exited(137))])]).state == LIVE


def test_an_image_that_cannot_be_pulled_fails_the_rollout_at_once() -> None:
    message = 'Back-off pulling image "registry.example.com/shipyard/runner:py3.12"'
    for reason in ("ErrImagePull", "ImagePullBackOff"):
        stuck = pod(version=8, ready=False, init=[waiting(reason, message, name="fetch-slug")],
                    containers=[waiting("PodInitializing")])
        verdict = judge(live_deployment(version=8, generation=5, updated=1, total=3), [stuck], generation=5)
        assert verdict.state == FAILED
        assert verdict.cause == (f"Release v8 failed: web (pod web-5d8c7b9f4-x2x9z) cannot start: the image "
                                 f"registry.example.com/shipyard/runner:py3.12 could not be pulled ({reason}: "
                                 f"{message}).")
        assert "imagePullSecret" in verdict.hint


def test_an_oom_kill_fails_the_rollout_and_names_the_memory_limit() -> None:
    oom = pod(version=8, ready=False, containers=[waiting("CrashLoopBackOff", restarts=1,
                                                          last=exited(137, "OOMKilled"))])
    verdict = judge(live_deployment(version=8, generation=5, updated=1, total=3), [oom], generation=5)
    assert verdict.cause == ("Release v8 failed: web (pod web-5d8c7b9f4-x2x9z) ran out of memory: it exceeded its "
                             "limit of 1024Mi and was killed.")
    assert verdict.hint.startswith("Give it a bigger size (`shipyard apps set todo --size medium`)")
    assert container_trouble(oom).reason == "OOMKilled"


def test_a_missing_secret_and_a_failed_slug_fetch_are_told_apart() -> None:
    missing = pod(version=8, ready=False, containers=[waiting("CreateContainerConfigError",
                                                              'secret "config-v8" not found')])
    verdict = judge(live_deployment(version=8, generation=5, updated=1, total=3), [missing], generation=5)
    assert verdict.cause == ('Release v8 failed: web (pod web-5d8c7b9f4-x2x9z) could not be created: secret '
                             '"config-v8" not found.')
    fetch = pod(version=8, ready=False, init=[waiting("CrashLoopBackOff", name="fetch-slug", restarts=2, last=exited(
        1, message="urllib.error.HTTPError: HTTP Error 403: Forbidden"))], containers=[waiting("PodInitializing")])
    verdict = judge(live_deployment(version=8, generation=5, updated=1, total=3), [fetch], generation=5)
    assert verdict.cause.startswith("Release v8 failed: web (pod web-5d8c7b9f4-x2x9z) could not fetch the release's "
                                    "slug (it exited with code 1).")
    assert "HTTP Error 403: Forbidden" in verdict.cause and "slug server" in verdict.hint


def test_pods_kubernetes_cannot_create_fail_the_rollout_with_the_reason() -> None:
    refused = 'pods "web-7f9d6c5b4-" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true'
    deployment = live_deployment(version=8, generation=5, updated=0, ready=2, available=2, total=2, conditions=[
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetCreated"},
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": refused}])
    verdict = judge(deployment, generation=5)
    assert verdict.cause == f"Release v8 failed: Kubernetes could not create web's pods: {refused}"


def test_the_progress_deadline_and_the_boot_timeout_fail_a_rollout_that_stopped_advancing() -> None:
    stalled = live_deployment(version=8, generation=5, updated=1, ready=2, available=2, total=3, conditions=[
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "message": 'ReplicaSet "web-7f9d6c5b4" has timed out progressing.'}])
    unready = pod("web-7f9d6c5b4-k2j4h", version=8, ready=False, containers=[running(ready=False)])
    verdict = judge(stalled, [unready], generation=5)
    assert verdict.cause == ("Release v8 failed: 0 of 2 new web pods became ready within 180 s. "
                             "web-7f9d6c5b4-k2j4h: Running, not ready.")
    assert "--health-path" in verdict.hint and "0.0.0.0:$PORT" in verdict.hint
    unscheduled = pod("web-7f9d6c5b4-k2j4h", version=8, ready=False, containers=[], init=[], phase="Pending")
    unscheduled["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                            "message": "0/3 nodes are available: 3 Insufficient cpu."}]
    progressing = live_deployment(version=8, generation=5, updated=1, ready=2, available=2, total=3)
    assert judge(progressing, [unscheduled], generation=5, waited=179).state == WAITING
    late = judge(progressing, [unscheduled], generation=5, waited=181)
    assert late.cause == ("Release v8 failed: 0 of 2 new web pods became ready within 180 s. web-7f9d6c5b4-k2j4h: "
                          "not scheduled: 0/3 nodes are available: 3 Insufficient cpu.")


def test_the_progress_mark_changes_whenever_the_rollout_advances() -> None:
    assert progress_mark(live_deployment(updated=1, ready=2, available=2)) == (4, 1, 2, 2)
    assert progress_mark(live_deployment(updated=2, ready=2, available=2)) == (4, 2, 2, 2)
    assert progress_mark({"metadata": {"name": "web"}}) == (0, 0, 0, 0)


# job_verdict


def release_job(version: int = 7, status: dict | None = None, **overrides: Any) -> dict:
    job = copy.deepcopy(render(todo(version, **overrides)).release_job)
    job["metadata"] |= {"generation": 1, "uid": "9a1…"}
    job["status"] = status or {"active": 1, "startTime": T0}
    return job


def job_pod(containers: list[dict], phase: str = "Failed", init: list[dict] | None = None) -> dict:
    found = pod("release-v7-8kq2d", process_type="release", ready=False, containers=containers, phase=phase,
                init=init)
    found["spec"] = copy.deepcopy(render(todo()).release_job["spec"]["template"]["spec"])
    found["metadata"]["labels"] |= {"job-name": "release-v7", "batch.kubernetes.io/job-name": "release-v7"}
    return found


def test_a_release_job_succeeds_on_its_complete_condition_or_count() -> None:
    done = release_job(status={"succeeded": 1, "completionTime": T2, "conditions": [
        {"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]})
    assert job_verdict(done).state == SUCCEEDED
    assert job_verdict(release_job(status={"succeeded": 1})).state == SUCCEEDED


def test_a_failed_release_job_says_the_command_its_exit_code_and_last_lines() -> None:
    failed = release_job(status={"failed": 1, "conditions": [
        {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"}]})
    crashed = job_pod([{**running("release", False), "state": {"terminated": exited(1)}}])
    logs = ["INFO  [alembic.runtime.migration] Running upgrade  -> 4d2b, add column",
            'sqlalchemy.exc.ProgrammingError: column "done" of relation "todo" already exists']
    verdict = job_verdict(failed, [crashed], logs)
    assert verdict.state == FAILED
    assert verdict.cause == ("Release v7 failed: the release command `flask db upgrade` exited with code 1.\n"
                             "Its last 2 log lines:\n  " + "\n  ".join(logs))
    assert verdict.hint == RELEASE_HINT
    assert (verdict.trouble.pod, verdict.trouble.container) == ("release-v7-8kq2d", "release")


def test_a_release_job_that_ran_too_long_says_its_limit() -> None:
    timed_out = release_job(status={"failed": 1, "conditions": [
        {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
         "message": "Job was active longer than specified deadline"}]})
    verdict = job_verdict(timed_out, [], ["Applying migration 0042…"])
    assert verdict.cause.startswith("Release v7 failed: the release command `flask db upgrade` ran longer than its "
                                    "limit of 3600 s and was stopped.\nIts last 1 log lines:")


def test_a_release_job_waits_while_running_or_unscheduled_and_fails_on_a_stuck_image() -> None:
    assert job_verdict(release_job(), [job_pod([running("release")], phase="Running")]) == \
        Verdict(WAITING, progress="release command: running")
    assert job_verdict(release_job()) == Verdict(WAITING, progress="release command: waiting for its pod")
    pending = job_pod([], phase="Pending", init=[])
    pending["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                        "message": "0/1 nodes are available: 1 Insufficient memory."}]
    verdict = job_verdict(release_job(), [pending])
    assert verdict == Verdict(WAITING, progress="release command: not scheduled: 0/1 nodes are available: "
                                                "1 Insufficient memory")
    # restartPolicy Never: a pull that fails keeps the pod Pending and the Job active forever.
    stuck = job_pod([waiting("PodInitializing", name="release")], phase="Pending",
                    init=[waiting("ImagePullBackOff", "Back-off pulling image", name="fetch-slug")])
    verdict = job_verdict(release_job(), [stuck])
    assert verdict.state == FAILED and verdict.cause.startswith(
        "Release v7 failed: The release command `flask db upgrade` cannot start: the image")


def test_a_release_command_is_shown_as_the_user_wrote_it() -> None:
    job = release_job(release_command="python manage.py migrate && echo $(date) $$", status={"failed": 1})
    crashed = job_pod([{**running("release", False), "state": {"terminated": exited(2)}}])
    assert job_verdict(job, [crashed]).cause.startswith(
        "Release v7 failed: the release command `python manage.py migrate && echo $(date) $$` exited with code 2.\n"
        "(the process printed nothing)")


def test_a_release_command_killed_for_its_memory_says_so() -> None:
    oom = job_pod([{**running("release", False), "state": {"terminated": exited(137, "OOMKilled")}}])
    verdict = job_verdict(release_job(status={"failed": 1}), [oom])
    assert verdict.cause == ("Release v7 failed: The release command `flask db upgrade` ran out of memory: it "
                             "exceeded its limit of 1024Mi and was killed.")


# instance_states


def test_pods_become_ps_rows_with_name_release_state_restarts_and_since() -> None:
    up = pod(containers=[running(restarts=2, last=exited(1, message="Traceback …\nRuntimeError: boom"))])
    starting = pod("web-5d8c7b9f4-q7w2e", ready=False, created=T1, containers=[running(ready=False)])
    worker = pod("worker-6b7c8d9e0-z9y8x", process_type="worker", containers=[running("worker")])
    release = job_pod([{**running("release", False), "state": {"terminated": exited(0, "Completed")}}], "Succeeded")
    rows = instance_states([worker, starting, release, up])
    assert [(r.name, r.pod, r.process_type, r.release, r.state, r.restarts) for r in rows] == [
        ("web.x2x9z", "web-5d8c7b9f4-x2x9z", "web", 7, "up", 2),
        ("web.q7w2e", "web-5d8c7b9f4-q7w2e", "web", 7, "starting", 0),
        ("worker.z9y8x", "worker-6b7c8d9e0-z9y8x", "worker", 7, "up", 0)]
    assert rows[0].since == datetime.fromisoformat(T2).timestamp()  # Ready's lastTransitionTime
    assert (rows[0].last_failure, rows[0].exit_code) == ("exited with status 1: RuntimeError: boom", 1)
    assert (rows[1].last_failure, rows[1].exit_code) == ("", None)


def test_crashed_pods_say_why_and_since_when() -> None:
    crashing = pod(ready=False, containers=[waiting("CrashLoopBackOff", restarts=3, last=exited(3, finished=T1))])
    oom = pod("web-5d8c7b9f4-q7w2e", ready=False, containers=[
        waiting("CrashLoopBackOff", restarts=1, last=exited(137, "OOMKilled"))])
    pulling = pod("web-5d8c7b9f4-a1b2c", ready=False, containers=[waiting("ImagePullBackOff", "Back-off pulling "
                                                                          'image "runner:py3.99"')])
    fetch = pod("web-5d8c7b9f4-d3e4f", ready=False, init=[waiting("CrashLoopBackOff", name="fetch-slug", last=exited(
        1, message="slug checksum mismatch: got 1f…, want 0e…"))], containers=[waiting("PodInitializing")])
    evicted = pod("web-5d8c7b9f4-g5h6i", ready=False, phase="Failed", containers=[])
    evicted["status"] |= {"reason": "Evicted", "message": "The node was low on resource: memory."}
    rows = {r.pod: r for r in instance_states([crashing, oom, pulling, fetch, evicted])}
    assert all(r.state == "crashed" for r in rows.values())
    assert (rows["web-5d8c7b9f4-x2x9z"].last_failure, rows["web-5d8c7b9f4-x2x9z"].since) == (
        "exited with status 3", timestamp(T1))
    assert rows["web-5d8c7b9f4-q7w2e"].last_failure == "exceeded its memory limit (1024Mi) and was restarted " \
                                                       "(status 137)"
    assert rows["web-5d8c7b9f4-a1b2c"].last_failure == 'ImagePullBackOff: Back-off pulling image "runner:py3.99"'
    assert rows["web-5d8c7b9f4-d3e4f"].last_failure == ("could not fetch the slug: exited with status 1: slug "
                                                        "checksum mismatch: got 1f…, want 0e…")
    assert rows["web-5d8c7b9f4-g5h6i"].last_failure == "Evicted: The node was low on resource: memory."


def test_a_terminating_pod_is_stopping_since_its_deletion_began() -> None:
    leaving = pod(deletionTimestamp="2026-03-01T10:05:15Z", deletionGracePeriodSeconds=15)
    (row,) = instance_states([leaving])
    assert (row.state, row.since) == ("stopping", timestamp("2026-03-01T10:05:00Z"))


def test_a_procfile_type_keeps_its_own_spelling_in_ps() -> None:
    worker = pod("my-worker-1a2b3c-5f6g7h8i9-abcde", process_type="My_Worker", containers=[running("my-worker")])
    (row,) = instance_states([worker])
    assert (row.name, row.process_type) == ("My_Worker.abcde", "My_Worker")


# needs_apply


def fields_v1(obj: Any) -> dict:
    """A managedFields fieldsV1 for everything in obj, as the API server writes it for an apply."""
    owned: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            owned[f"f:{key}"] = fields_v1(value)
        elif isinstance(value, list):
            owned[f"f:{key}"] = {'k:{"name":"item"}': {".": {}}}
        else:
            owned[f"f:{key}"] = {}
    return owned


def as_applied(desired: dict, manager: str = "shipyard") -> dict:
    """What the API returns after applying `desired`: server defaults, status, bookkeeping and managedFields."""
    live = copy.deepcopy(desired)
    spec_fields = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind", "metadata")}
    owned = fields_v1({**spec_fields, "metadata": {k: v for k, v in desired["metadata"].items()
                                                   if k in ("labels", "annotations")}})
    live["metadata"] |= {"uid": "7d0e…", "resourceVersion": "90211", "generation": 4,
                         "creationTimestamp": T0, "managedFields": [
                             {"manager": manager, "operation": "Apply", "apiVersion": desired["apiVersion"],
                              "fieldsType": "FieldsV1", "fieldsV1": owned},
                             {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                              "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}]}
    if live["kind"] == "Deployment":
        live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "3"
        container = live["spec"]["template"]["spec"]["containers"][0]
        container |= {"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
        live["spec"]["template"]["spec"] |= {"dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler"}
        live["status"] = {"observedGeneration": 4, "replicas": 2}
    if live["kind"] == "Secret":
        live["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in live.pop("stringData").items()}
    return live


def test_an_object_that_is_not_there_needs_applying() -> None:
    assert needs_apply(kind(render(todo()).runtime, "web", "Deployment"), None)


def test_an_applied_object_with_server_defaults_status_and_a_new_resource_version_needs_nothing() -> None:
    rendered = render(todo())
    for desired in [*rendered.foundation, rendered.release_job, *rendered.runtime]:
        live = as_applied(desired)
        assert not needs_apply(desired, live), desired["kind"]
        live["metadata"]["resourceVersion"] = "99999"
        assert not needs_apply(desired, live), desired["kind"]


def test_a_changed_field_the_renderer_sets_needs_applying() -> None:
    desired = kind(render(todo()).runtime, "web", "Deployment")
    live = as_applied(desired)
    newer = kind(render(todo(version=8)).runtime, "web", "Deployment")
    assert needs_apply(newer, live)
    scaled = copy.deepcopy(desired)
    scaled["spec"]["replicas"] = 3
    assert needs_apply(scaled, live)


def test_quantities_are_compared_by_value_as_the_server_canonicalises_them() -> None:
    desired = kind(render(todo()).runtime, "web", "Deployment")
    live = as_applied(desired)
    limits = desired["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "1500m", "memory": "1024Mi"}
    limits |= {"cpu": "1.5", "memory": "1Gi"}
    assert not needs_apply(desired, live)
    limits["memory"] = "2Gi"
    assert needs_apply(desired, live)


def test_a_secrets_string_data_is_compared_with_the_base64_data_the_server_keeps() -> None:
    desired = kind(render(todo()).foundation, "config-v7", "Secret")
    live = as_applied(desired)
    assert "stringData" not in live and live["data"]["SECRET_KEY"] == base64.b64encode(b"s3cret").decode()
    assert not needs_apply(desired, live)
    changed = copy.deepcopy(desired)
    changed["stringData"]["SECRET_KEY"] = "rotated"
    assert needs_apply(changed, live)


def test_a_field_shipyard_owns_but_no_longer_sets_needs_applying_so_the_apply_removes_it() -> None:
    desired = kind(render(todo()).runtime, "web", "Deployment")
    live = as_applied(desired)
    assert ("spec", "replicas") in owned_fields(live, "shipyard")
    autoscaled = copy.deepcopy(desired)
    del autoscaled["spec"]["replicas"]  # an autoscaler owns the count now: Shipyard must let go of it
    assert needs_apply(autoscaled, live)
    unlabelled = copy.deepcopy(desired)
    del unlabelled["metadata"]["annotations"]["kubernetes.io/change-cause"]
    assert needs_apply(unlabelled, live)


def test_what_other_managers_add_needs_nothing_but_an_object_shipyard_never_applied_does() -> None:
    desired = kind(render(todo()).runtime, "web", "Service")
    live = as_applied(desired)
    live["metadata"]["labels"]["team"] = "payments"  # `kubectl label`, another manager's field
    live["spec"] |= {"clusterIP": "10.96.12.7", "clusterIPs": ["10.96.12.7"], "sessionAffinity": "None"}
    assert not needs_apply(desired, live)
    assert needs_apply(desired, as_applied(desired, manager="kubectl-client-side-apply"))
    # A sidecar a webhook injected: the lists differ, applying again is the safe answer.
    deployment = kind(render(todo()).runtime, "web", "Deployment")
    injected = as_applied(deployment)
    injected["spec"]["template"]["spec"]["containers"].append({"name": "istio-proxy", "image": "proxy"})
    assert needs_apply(deployment, injected)


# cluster.py against a fake API server (lightkube's own transport); skipped without the `kubernetes` extra.


class FakeApi:
    """Enough of the Kubernetes API for cluster.py: GET, server-side apply PATCH, DELETE, lists with label
    selectors, pod logs. Objects are stored by path; an apply bumps the generation when the spec changes."""

    def __init__(self) -> None:
        self.objects: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.logs: dict[str, list[str]] = {}
        self.conflict: str | None = None
        self.client: Any = None  # lightkube's AsyncClient, sending here
        self.completes = True  # Jobs succeed and Deployments roll out as soon as they are applied
        self.forced = 0  # applies with force=true

    def __call__(self, request: Any) -> Any:
        import httpx2
        path, method = request.url.path, request.method
        self.requests.append((method, path))
        if path.endswith("/log"):
            pod = path.split("/")[-2]
            tail = int(request.url.params.get("tailLines") or 0)
            return httpx2.Response(200, text="".join(f"{line}\n" for line in self.logs.get(pod, [])[-tail:]))
        if method == "GET" and path in self.objects:
            return httpx2.Response(200, json=self.objects[path])
        if method == "GET" and "labelSelector" in request.url.params:
            selector = dict(p.split("=") for p in request.url.params.get("labelSelector", "").split(",") if p)
            items = [o for p, o in self.objects.items() if p.rsplit("/", 1)[0] == path
                     and all(o["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]
            return httpx2.Response(200, json={"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items})
        if method == "PATCH":
            return self._apply(path, json.loads(request.content), request.url.params)
        if method == "DELETE" and path in self.objects:
            del self.objects[path]
            return httpx2.Response(200, json={"kind": "Status", "status": "Success"})
        return httpx2.Response(404, json={"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                          "reason": "NotFound", "message": f"{path.split('/')[-1]} not found"})

    def _apply(self, path: str, body: dict, params: Any) -> Any:
        import httpx2
        assert params["fieldManager"] in ("shipyard", "shipyard-restart")
        self.forced += params.get("force") == "true"
        if self.conflict and params.get("force") != "true":
            return httpx2.Response(409, json={"kind": "Status", "status": "Failure", "code": 409,
                                              "reason": "Conflict", "message": self.conflict})
        old = self.objects.get(path)
        if params["fieldManager"] != "shipyard" and old is not None:  # another manager's fields, merged in
            body = merged({k: v for k, v in old.items() if k != "status"}, body)
        generation = (old or {}).get("metadata", {}).get("generation", 0)
        if old is None or {k: v for k, v in old.items() if k not in ("metadata", "status")} != \
                {k: v for k, v in body.items() if k != "metadata"}:
            generation += 1
        live = as_applied(body)
        live["metadata"]["generation"] = generation
        live.pop("status", None)
        if self.completes and live["kind"] == "Job":
            live["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        if live["kind"] == "Deployment":  # seen at once; rolled out at once unless told otherwise
            count = live["spec"].get("replicas", 1)
            live["status"] = {"observedGeneration": generation, "replicas": count, "readyReplicas": count,
                              "availableReplicas": count, "updatedReplicas": count if self.completes else 0}
        self.objects[path] = live
        return httpx2.Response(200, json=live)


def merged(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.fixture
def fake() -> Any:
    pytest.importorskip("lightkube", reason="the `kubernetes` extra (lightkube) is not installed")
    import httpx2
    from lightkube import AsyncClient, KubeConfig
    from lightkube.config.models import Cluster as ClusterConfig
    from lightkube.config.models import User
    api = FakeApi()
    config = KubeConfig.from_one(cluster=ClusterConfig(server="https://kube.example.com:6443"), user=User(token="t"))
    api.client = AsyncClient(config.get(), field_manager="shipyard", transport=httpx2.MockTransport(api))
    return api


def run(coroutine: Any) -> Any:
    import asyncio
    return asyncio.run(coroutine)


def test_apply_is_server_side_and_skips_what_is_already_there(fake: Any) -> None:
    from shipyard.runtime.kubernetes import cluster
    objects = render(todo()).foundation
    first = run(cluster.apply(fake.client, objects))
    assert all(a.changed for a in first)
    assert [m for m, _ in fake.requests].count("PATCH") == len(objects)
    fake.requests.clear()
    again = run(cluster.apply(fake.client, objects))
    assert not any(a.changed for a in again) and [m for m, _ in fake.requests] == ["GET"] * len(objects)
    assert ("PATCH", "/api/v1/namespaces/shipyard-todo/secrets/config-v7") not in fake.requests


def test_a_conflict_with_another_field_manager_is_reported_not_forced(fake: Any) -> None:
    from shipyard.errors import Conflict
    from shipyard.runtime.kubernetes import cluster
    fake.conflict = 'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas'
    with pytest.raises(Conflict) as caught:
        run(cluster.apply(fake.client, render(todo()).runtime[:1]))
    assert caught.value.message == ("Applying Deployment web in shipyard-todo: fields Shipyard sets are managed by "
                                    f"someone else: {fake.conflict}")
    assert "force=True" in caught.value.hint and fake.forced == 0


def test_the_autoscalers_hold_on_the_count_is_taken_back_once_autoscaling_is_off(fake: Any) -> None:
    """The HPA controller keeps owning .spec.replicas after its HPA is gone: that conflict alone is overridden."""
    from shipyard.errors import Conflict
    from shipyard.runtime.kubernetes import cluster
    fake.conflict = ('Apply failed with 1 conflict: conflict with "kube-controller-manager" using apps/v1: '
                     ".spec.replicas")
    [applied] = run(cluster.apply(fake.client, render(todo()).runtime[:1]))
    assert applied.changed and fake.forced == 1
    fake.conflict = ('Apply failed with 2 conflicts: conflicts with "kube-controller-manager" using apps/v1:\n'
                     '- .spec.replicas\n- .spec.template.spec.containers[name="web"].image')
    fake.objects.clear()
    with pytest.raises(Conflict):  # more than the count: someone changed the app, reported as ever
        run(cluster.apply(fake.client, render(todo()).runtime[:1]))
    assert fake.forced == 1


def test_a_failed_release_job_raises_with_the_pods_last_log_lines(fake: Any) -> None:
    from shipyard.errors import ReleasePhaseFailed
    from shipyard.runtime.kubernetes import cluster
    job = render(todo()).release_job
    run(cluster.apply(fake.client, [job]))
    path = "/apis/batch/v1/namespaces/shipyard-todo/jobs/release-v7"
    fake.objects[path]["status"] = {"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                                                                 "reason": "BackoffLimitExceeded"}]}
    failed = job_pod([{**running("release", False), "state": {"terminated": exited(1)}}])
    fake.objects["/api/v1/namespaces/shipyard-todo/pods/release-v7-8kq2d"] = failed
    fake.logs["release-v7-8kq2d"] = ["migrating", "ERROR: relation \"todo\" already exists"]
    with pytest.raises(ReleasePhaseFailed) as caught:
        run(cluster.wait_job(fake.client, job, timeout=5, poll=0.01))
    assert caught.value.message == ("Release v7 failed: the release command `flask db upgrade` exited with code 1.\n"
                                    "Its last 2 log lines:\n  migrating\n  ERROR: relation \"todo\" already exists")


def test_a_rollout_is_waited_for_until_live(fake: Any) -> None:
    from shipyard.runtime.kubernetes import cluster
    (applied,) = run(cluster.apply(fake.client, [kind(render(todo()).runtime, "web", "Deployment")]))
    assert applied.generation == 1
    path = "/apis/apps/v1/namespaces/shipyard-todo/deployments/web"
    fake.objects[path]["status"] = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                                    "readyReplicas": 2, "availableReplicas": 2}
    verdict = run(cluster.wait_rollout(fake.client, applied, deadline=5, poll=0.01))
    assert verdict.state == LIVE


def test_prune_deletes_what_the_app_no_longer_has_and_ps_reads_the_pods(fake: Any) -> None:
    from shipyard.runtime.kubernetes import cluster, rollout
    with_worker = render(todo())
    run(cluster.apply(fake.client, [*with_worker.foundation, *with_worker.runtime]))
    fake.objects["/api/v1/namespaces/shipyard-todo/pods/web-5d8c7b9f4-x2x9z"] = pod()
    without = render(todo(version=8, process_types={"web": "gunicorn app:app"}, formation={"web": 2}))
    gone = run(rollout.prune(fake.client, "shipyard-todo", "todo", [*without.foundation, *without.runtime]))
    assert sorted(gone) == ["Deployment worker in shipyard-todo", "Secret config-v7 in shipyard-todo",
                            "Secret slug-v7 in shipyard-todo"]
    rows = run(cluster.instances(fake.client, todo()))
    assert [(r.name, r.state) for r in rows] == [("web.x2x9z", "up")]


def test_connect_reads_kubeconfig_and_says_what_is_wrong(tmp_path: Any, monkeypatch: Any) -> None:
    pytest.importorskip("lightkube", reason="the `kubernetes` extra (lightkube) is not installed")
    from shipyard.errors import PlatformError
    from shipyard.runtime.kubernetes import cluster
    config = tmp_path / "config"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "kind-shipyard",
        "clusters": [{"name": "kind-shipyard", "cluster": {"server": "https://127.0.0.1:6443",
                                                           "insecure-skip-tls-verify": True}}],
        "contexts": [{"name": "kind-shipyard", "context": {"cluster": "kind-shipyard", "user": "admin"}}],
        "users": [{"name": "admin", "user": {"token": "abc"}}]}))
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{config}")
    assert cluster.server_of(cluster.connect()) == "https://127.0.0.1:6443"
    with pytest.raises(PlatformError, match="Context 'other' not found"):
        cluster.connect(context="other")


def test_deploy_applies_the_stages_in_order_and_prunes_what_is_left_over(fake: Any) -> None:
    from shipyard.runtime.kubernetes import rollout
    said: list[str] = []

    async def say(line: str) -> None:
        said.append(line)

    run(rollout.deploy(fake.client, todo(), say=say, poll=0.01))
    patched = [path.rsplit("/", 2)[-2] for method, path in fake.requests if method == "PATCH"]
    assert patched.index("jobs") < patched.index("deployments")  # the release command first
    assert patched[0] == "namespaces"
    fake.requests.clear()
    run(rollout.deploy(fake.client, todo(version=8), previous=todo(), say=say, poll=0.01))
    assert ("DELETE", "/api/v1/namespaces/shipyard-todo/secrets/config-v7") in fake.requests
    assert said[:2] == ["-----> Running release command: flask db upgrade", "-----> Release command succeeded"]
    assert said[-1] == "-----> v8 is live at http://todo.apps.example.com/"


def test_a_failed_rollout_puts_the_previous_release_back(fake: Any) -> None:
    from shipyard.runtime.kubernetes import rollout
    run(rollout.deploy(fake.client, todo(), poll=0.01))
    fake.completes = False
    crashing = pod("web-7f9d6c5b4-k2j4h", version=8, ready=False, containers=[
        waiting("CrashLoopBackOff", restarts=1, last=exited(1))])
    fake.objects["/api/v1/namespaces/shipyard-todo/pods/web-7f9d6c5b4-k2j4h"] = crashing
    fake.objects["/apis/batch/v1/namespaces/shipyard-todo/jobs/release-v8"] = {
        **as_applied(render(todo(version=8)).release_job), "status": {"succeeded": 1}}
    fake.logs["web-7f9d6c5b4-k2j4h"] = ["Error: class uri 'gevent' invalid or not found"]
    with pytest.raises(DeployError) as caught:
        run(rollout.deploy(fake.client, todo(version=8), previous=todo(), poll=0.01))
    assert caught.value.message.startswith("Release v8 failed: web (pod web-7f9d6c5b4-k2j4h) exited with code 1 "
                                           "before it was ready.\nIts last 1 log lines:\n  Error: class uri")
    web = fake.objects["/apis/apps/v1/namespaces/shipyard-todo/deployments/web"]
    assert web["spec"]["template"]["metadata"]["annotations"]["shipyard.internal/release"] == "v7"
    assert "/api/v1/namespaces/shipyard-todo/secrets/config-v7" in fake.objects
    assert "/api/v1/namespaces/shipyard-todo/secrets/config-v8" not in fake.objects  # the failed release's, pruned
